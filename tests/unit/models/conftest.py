"""Shared fixtures for the model-library unit tests (no broker, no network)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def registry():
    """The committed catalog, with every model whose artifact is present (served or not)."""
    from models.registry import Registry

    return Registry.load(include_test=True, include_unserved=True)

"""Helpers shared by the adapters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.base import ModelOutput
from models.registry import ModelSpec


def artifact_dir(spec: ModelSpec) -> Path:
    """The spec's artifact folder; raises a clear error for specs without one."""
    path = spec.artifact_path()
    if path is None:
        raise ValueError(f"model {spec.id!r} needs an artifact but its spec has none")
    return path


def outputs_from_probs(probs: np.ndarray, labels: list[str]) -> list[ModelOutput]:
    """One :class:`ModelOutput` per row of ``probs`` (argmax label, its probability,
    and the whole distribution)."""
    best = probs.argmax(axis=1)
    out = []
    for row, k in zip(probs, best, strict=True):
        out.append(
            ModelOutput(
                label=labels[int(k)],
                score=float(row[k]),
                probs={lab: float(p) for lab, p in zip(labels, row, strict=True)},
            )
        )
    return out

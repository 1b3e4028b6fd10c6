"""The broker fixtures (kafka, env, start_worker) live in tests/conftest.py, shared with
tests/browser and tests/chaos; the helpers are re-exported here for the existing imports."""

from tests.conftest import REPO, Env, Worker, wait_for

__all__ = ["REPO", "Env", "Worker", "wait_for"]

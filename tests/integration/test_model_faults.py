"""A model that raises or hangs: its subtasks fail over; nothing is stuck in fuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Env, test_sentiment_feed

pytestmark = pytest.mark.integration


def _feed(path: Path, ids: list[str]) -> Path:
    return test_sentiment_feed(path, ids, "the transfer failed twice", budget_ms=5000)


@pytest.mark.parametrize("fault", ["fail", "hang"])
def test_faulty_model_fails_over_to_the_alternative(env: Env, start_worker, tmp_path: Path, fault: str):
    control = tmp_path / "control"
    control.mkdir()
    (control / "test-primary").write_text(fault)
    extra = {
        "STREAMFUSE_TEST_MODELS": "1",
        "STREAMFUSE_TEST_CONTROL_DIR": str(control),
        "STREAMFUSE_MODEL_TIMEOUT_S": "2",
    }
    env.vars.update(extra)
    start_worker("recognize,infer:test-primary,test-fallback,fuse", extra)
    ids = [f"{fault}-{i}" for i in range(20)]
    env.cli("produce", str(_feed(tmp_path / "f.jsonl", ids)))

    results = env.tail_json("results", limit=len(ids), timeout=120)
    assert {r["id"] for r in results} == set(ids)
    for r in results:
        out = r["outputs"]["test_sentiment"]
        assert out["allocation"]["models"] == ["test-primary"]
        votes = {m["model_id"]: m for m in out["models"]}
        assert votes["test-primary"]["error"]
        assert votes["test-fallback"]["label"] == "negative"
        assert out["label"] == "negative"
        assert r["partial"] is False  # another model could serve the task

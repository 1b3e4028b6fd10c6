"""The broker fixtures (kafka, env, start_worker) live in tests/conftest.py, shared with
tests/browser and tests/chaos; the helpers are re-exported here for the existing imports."""

from pathlib import Path

import orjson

from tests.conftest import REPO, Env, Worker, wait_for

__all__ = ["REPO", "Env", "Worker", "test_sentiment_feed", "wait_for"]


def test_sentiment_feed(path: Path, ids: list[str], text: str, budget_ms: int) -> Path:
    """A JSONL feed for the test-only `test_sentiment` task (``{id}`` in ``text`` is filled)."""
    path.write_bytes(
        b"\n".join(
            orjson.dumps(
                {
                    "id": mid,
                    "text": text.format(id=mid),
                    "source": "t",
                    "tasks": ["test_sentiment"],
                    "meta": {"budget_ms": budget_ms},
                }
            )
            for mid in ids
        )
        + b"\n"
    )
    return path


test_sentiment_feed.__test__ = False  # a helper, not a test

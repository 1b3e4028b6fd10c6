"""Allocation under live load: a slowed model loses its traffic and gets it back."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.integration.conftest import Env, test_sentiment_feed, wait_for

pytestmark = pytest.mark.integration


def _feed(path: Path, ids: list[str]) -> Path:
    return test_sentiment_feed(path, ids, "the payment failed for order {id}", budget_ms=400)


def _chosen(results: list[dict], ids: list[str]) -> list[str]:
    by_id = {r["id"]: r for r in results}
    return [by_id[i]["outputs"]["test_sentiment"]["allocation"]["models"][0] for i in ids if i in by_id]


def test_slow_model_loses_traffic_and_gets_it_back(env: Env, start_worker, tmp_path: Path):
    control = tmp_path / "control"
    control.mkdir()
    extra = {
        "STREAMFUSE_TEST_MODELS": "1",
        "STREAMFUSE_TEST_CONTROL_DIR": str(control),
        "STREAMFUSE_STATS_INTERVAL_S": "0.5",
    }
    env.vars.update(extra)
    start_worker("recognize,infer:test-primary,test-fallback,fuse", extra)

    normal = [f"a-{i}" for i in range(30)]
    slow = [f"b-{i}" for i in range(120)]
    recovered = [f"c-{i}" for i in range(60)]

    env.cli("produce", str(_feed(tmp_path / "a.jsonl", normal)), "--rate", "20")
    wait_for(lambda: len(env.tail_json("results", timeout=3)) >= len(normal), 90, "the first results")

    (control / "test-primary").write_text("delay 1.0")
    env.cli("produce", str(_feed(tmp_path / "b.jsonl", slow)), "--rate", "20")

    (control / "test-primary").write_text("")
    wait_for(
        lambda: len(env.tail_json("results", timeout=3)) >= len(normal) + len(slow),
        120,
        "the slow phase to drain",
    )
    env.cli("produce", str(_feed(tmp_path / "c.jsonl", recovered)), "--rate", "10")

    results = env.tail_json("results", timeout=120, idle=10)
    ids = {r["id"] for r in results}
    everything = normal + slow + recovered
    assert ids == set(everything), f"lost: {sorted(set(everything) - ids)[:10]}"

    first = _chosen(results, normal)
    during = _chosen(results, slow[len(slow) // 2 :])
    after = _chosen(results, recovered[len(recovered) // 2 :])
    assert first.count("test-primary") == len(first), f"before the slowdown: {Counter(first)}"
    assert during.count("test-fallback") >= 0.8 * len(during), f"slowed: {Counter(during)}"
    assert after.count("test-primary") >= 0.8 * len(after), f"recovered: {Counter(after)}"
    degraded = [
        r
        for r in results
        if r["id"] in set(slow) and r["outputs"]["test_sentiment"]["allocation"]["degraded"]
    ]
    assert degraded, "the plans never said they degraded"

"""The chaos run's drain: a stalled live watcher is replaced by a fresh count of the topics."""

from __future__ import annotations

from collections import Counter

import pytest

from streams import chaos
from streams.settings import Settings
from streams.topics import Topics


@pytest.fixture
def recount(monkeypatch):
    """Replace the topic re-read with what the topics 'hold', and count the calls."""
    calls: list[int] = []

    def install(results: Counter[str], dlq: set[str]):
        rows = [chaos._Row(0, n, 0, {"id": mid}) for mid, times in results.items() for n in range(times)]

        async def fake(settings, topics):
            calls.append(1)
            return rows, dlq

        monkeypatch.setattr(chaos, "_recount", fake)
        return calls

    return install


async def test_a_stalled_watcher_is_recounted_from_the_topics(recount):
    calls = recount(Counter({"a": 1, "b": 2}), {"c"})
    seen: dict[str, int] = {"a": 1}  # the watcher saw only one, then stalled
    dead: set[str] = set()
    await chaos._drain(Settings(), Topics("t."), {"a", "b", "c"}, seen, dead, timeout=10, recount_after=0.5)
    assert calls  # the recount ran
    assert seen == {"a": 1, "b": 2} and dead == {"c"}


async def test_a_watcher_that_sees_everything_needs_no_recount(recount):
    calls = recount(Counter(), set())
    seen = {"a": 1, "b": 1}
    await chaos._drain(Settings(), Topics("t."), {"a", "b"}, seen, set(), timeout=10, recount_after=0.5)
    assert not calls


async def test_a_real_loss_ends_the_wait_at_the_timeout(recount):
    calls = recount(Counter({"a": 1}), set())
    seen = {"a": 1}
    await chaos._drain(Settings(), Topics("t."), {"a", "b"}, seen, set(), timeout=2.5, recount_after=0.5)
    assert calls and "b" not in seen


def test_duplicate_detail_says_where_each_copy_sits():
    rows = [
        chaos._Row(4, 25, 0, {"id": "m1", "stage_ts": {"fused": 1_000}}),
        chaos._Row(4, 26, 0, {"id": "m2", "stage_ts": {"fused": 1_000}}),
        chaos._Row(4, 54, 0, {"id": "m1", "stage_ts": {"fused": 8_600}}),
    ]
    assert chaos._duplicate_detail(rows, ["m1"]) == ["m1 p4:25@+0.0s, p4:54@+7.6s"]
    assert chaos._count_ids(rows, "id") == Counter({"m1": 2, "m2": 1})

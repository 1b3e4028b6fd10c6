from agents.windows import WindowStore, window_starts
from tests.unit.agents.factories import result


def test_window_starts_tumbling_and_hopping():
    starts = list(window_starts(65_000, 60_000, 20_000))
    assert ("tumbling", 60_000) in starts
    assert sorted(s for k, s in starts if k == "hopping") == [20_000, 40_000, 60_000]


def test_windows_close_on_the_watermark_with_stats():
    store = WindowStore(size_s=60, hop_s=60, grace_s=5)
    for i in range(4):
        store.add(
            result(f"m{i}", 1_000 + i, sentiment="negative" if i else "positive", entities=("BA",)),
            0,
        )
    assert store.close_due(0) == []
    store.add(result("late-enough", 70_000), 0)  # watermark 65 s passes the first window
    closed = {(c.stats.dimension, c.stats.key): c.stats for c in store.close_due(0)}
    src = closed[("source", "newswire")]
    assert src.count == 4 and src.sentiment_mean == -0.5
    assert src.sentiment_dist == {"positive": 1, "negative": 3}
    assert closed[("entity", "BA")].count == 4


def test_idle_time_advances_the_watermark():
    store = WindowStore(size_s=60, hop_s=60, grace_s=5)
    store.add(result("m", 1_000), wall_ms=0)
    assert store.close_due(wall_ms=10_000) == []
    assert len(store.close_due(wall_ms=70_000)) == 1


def test_late_events_are_counted_not_added():
    store = WindowStore(size_s=60, hop_s=60, grace_s=0)
    store.add(result("a", 200_000), 0)
    assert store.add(result("old", 1_000), 0) == 0
    assert store.late == 1


def test_conversation_dimension_for_chat():
    store = WindowStore(size_s=60, hop_s=60, grace_s=0)
    store.add(result("c1", 1_000, source="support-chat", key="conv-1", intent="card_lost"), 0)
    dims = {(w.dimension, w.key) for w in store.open.values()}
    assert ("conversation", "conv-1") in dims


def test_watermark_follows_the_slowest_active_partition():
    store = WindowStore(size_s=60, hop_s=60, grace_s=0)
    store.add(result("fast", 200_000), 0, ("r", 1, 0))
    store.add(result("slow", 1_000), 0, ("r", 2, 0))
    assert store.watermark(0) == 1_000  # partition 2 is behind: nothing closes yet
    assert store.add(result("late-but-fine", 2_000), 0, ("r", 2, 1)) > 0
    # once partition 2 is idle past the timeout, it no longer holds the watermark back
    assert store.watermark(5_000) >= 200_000

import orjson

from agents.windows import WindowTable, event_key, events_of, window_starts
from streams.records import WindowEvent
from tests.unit.agents.factories import result


def ev(mid: str, ts: int, *, dim: str = "source", key: str = "newswire", sentiment: str | None = "positive"):
    return WindowEvent(dimension=dim, key=key, message_id=mid, ts=ts, sentiment=sentiment)  # type: ignore[arg-type]


def feed(table: WindowTable, events: list[WindowEvent], wall_ms: int = 0, first_offset: int = 0) -> None:
    for i, e in enumerate(events):
        table.add(e, first_offset + i, wall_ms)


def test_window_starts_tumbling_and_hopping():
    starts = list(window_starts(65_000, 60_000, 20_000))
    assert ("tumbling", 60_000) in starts
    assert sorted(s for k, s in starts if k == "hopping") == [20_000, 40_000, 60_000]


def test_a_result_becomes_one_event_per_window_key():
    r = result("m1", 1_000, sentiment="negative", entities=("BA", "AAPL"))
    events = events_of(r)
    assert [event_key(e) for e in events] == ["source:newswire", "entity:BA", "entity:AAPL"]
    assert all(e.sentiment == "negative" and e.message_id == "m1" and e.ts == 1_000 for e in events)
    chat = events_of(
        result("c1", 5, source="support-chat", key="conv-1", intent="card_lost", sentiment="negative")
    )
    conv = next(e for e in chat if e.dimension == "conversation")
    assert conv.key == "conv-1" and conv.intent == "card_lost" and conv.alarming
    assert not next(e for e in chat if e.dimension == "source").alarming  # only turns escalate


def test_windows_close_on_the_watermark_with_stats():
    table = WindowTable(size_s=60, hop_s=60, grace_s=5)
    feed(table, [ev(f"m{i}", 1_000 + i, sentiment="negative" if i else "positive") for i in range(4)])
    assert table.close_due(0) == []
    table.add(ev("late-enough", 70_000), 10, 0)  # watermark 65 s passes the first window
    (closed,) = table.close_due(0)
    assert closed.stats.count == 4 and closed.stats.sentiment_mean == -0.5
    assert closed.stats.sentiment_dist == {"positive": 1, "negative": 3}
    assert closed.stats.message_ids == ["m0", "m1", "m2", "m3"]


def test_idle_time_advances_the_watermark():
    table = WindowTable(size_s=60, hop_s=60, grace_s=5)
    table.add(ev("m", 1_000), 0, wall_ms=0)
    assert table.close_due(wall_ms=10_000) == []
    assert len(table.close_due(wall_ms=70_000)) == 1


def test_late_events_are_counted_not_added():
    table = WindowTable(size_s=60, hop_s=60, grace_s=0)
    table.add(ev("a", 200_000), 0, 0)
    assert table.add(ev("old", 1_000), 1, 0) == 0
    assert table.late == 1


def test_a_replayed_event_is_not_counted_twice():
    table = WindowTable(size_s=60, hop_s=20, grace_s=5)
    feed(table, [ev(f"m{i}", 1_000 + i) for i in range(5)])
    assert table.add(ev("m3", 1_003), 3, 0) == 0  # offset 3 again: a redelivery
    assert table.add(ev("m5", 1_005), 5, 0) > 0
    assert {w.count for w in table.open.values()} == {6}


def test_the_table_restores_from_its_changelog():
    table = WindowTable(size_s=60, hop_s=20, grace_s=5)
    feed(table, [ev(f"m{i}", 1_000 + i, sentiment="negative") for i in range(3)])
    log = dict(table.changes())  # what a compacted changelog keeps: the latest per key
    feed(table, [ev("m3", 2_000)], first_offset=3)
    table.add(ev("late-enough", 200_000), 4, 0)
    closed = table.close_due(0)
    log.update(table.changes())  # closed windows are deleted (None)

    restored = WindowTable(size_s=60, hop_s=20, grace_s=5)
    for key, state in log.items():  # through JSON, as the changelog stores it
        assert restored.restore(key, orjson.loads(orjson.dumps(state)) if state is not None else None, 0)
    assert restored.max_ts == table.max_ts
    assert {k: w.to_state() for k, w in restored.open.items()} == {
        k: w.to_state() for k, w in table.open.items()
    }
    assert all(
        k not in restored.open
        for k in ((c.window.dimension, c.window.key, c.window.kind, c.window.start_ms) for c in closed)
    )
    # a replay of an event the closed windows already counted is late, not a new window
    assert restored.add(ev("m1", 1_001), 1, 0) == 0


def test_a_partial_changelog_write_never_drops_an_unclosed_window():
    table = WindowTable(size_s=60, hop_s=60, grace_s=0)
    table.add(ev("a", 1_000), 0, 0)
    table.changes()
    table.add(ev("b", 70_000), 1, 0)
    table.close_due(0)
    changes = table.changes()
    assert changes[0][0] == WindowTable.META  # stream time first, deletions last
    assert changes[-1][1] is None


def at(e: WindowEvent, part: int) -> WindowEvent:
    """The event as read from sf.results partition ``part``."""
    return e.model_copy(update={"src_partition": part})


def test_watermark_follows_the_slowest_active_source_partition():
    table = WindowTable(size_s=60, hop_s=60, grace_s=0, source_partitions=2)
    table.add(at(ev("fast", 200_000), 0), 0, 0)
    table.add(at(ev("slow", 1_000), 1), 1, 0)
    assert table.watermark(0) == 1_000  # every partition seen: the slowest one, 1, holds it
    assert table.add(at(ev("late-but-fine", 2_000), 1), 2, 0) > 0
    # once partition 1 is idle past the timeout, it no longer holds the watermark back
    assert table.watermark(5_000) >= 200_000


def test_an_unseen_source_partition_holds_the_watermark_until_it_shows_up():
    table = WindowTable(size_s=60, hop_s=60, grace_s=0, source_partitions=2)
    table.add(at(ev("fast", 200_000), 0), 0, 0)
    assert table.watermark(1_000) is None  # partition 1 has sent nothing yet
    assert table.close_due(1_000) == []
    # its first event, far behind partition 0, is counted, not late
    assert table.add(at(ev("first-of-1", 1_000), 1), 1, 1_000) == 1
    assert table.late == 0
    assert table.watermark(1_000) == 1_000  # both seen: the minimum, as before


def test_an_unseen_source_partition_that_idles_out_no_longer_holds_the_watermark():
    table = WindowTable(size_s=60, hop_s=60, grace_s=0, source_partitions=2)
    table.add(at(ev("a", 200_000), 0), 0, 0)
    assert table.watermark(table.idle_timeout_ms) is None
    table.add(at(ev("b", 200_001), 0), 1, table.idle_timeout_ms)  # partition 0 stays active
    # partition 1: nothing for the idleness timeout since the table's first event
    assert table.watermark(table.idle_timeout_ms + 1) == 200_001
    assert table.add(at(ev("too-late", 1_000), 1), 2, table.idle_timeout_ms + 1) == 0
    assert table.late == 1


def test_a_restored_table_waits_for_unseen_partitions_but_never_reopens_a_closed_window():
    table = WindowTable(size_s=60, hop_s=60, grace_s=0, source_partitions=2)
    table.add(at(ev("a", 1_000), 0), 0, 0)
    table.add(at(ev("b", 130_000), 0), 1, 3_000)  # partition 1 idled out: [0, 60 s) closes
    (closed,) = table.close_due(3_000)
    assert closed.window.start_ms == 0
    log = dict(table.changes())

    restored = WindowTable(size_s=60, hop_s=60, grace_s=0, source_partitions=2)
    for key, state in log.items():  # through JSON, as the changelog stores it
        restored.restore(key, orjson.loads(orjson.dumps(state)) if state is not None else None, 10_000)
    # partition 1 gets the idleness timeout again from the restore, but what closed stays closed
    assert restored.watermark(10_000) == 60_000
    assert restored.add(at(ev("a", 1_000), 0), 0, 10_000) == 0  # a replay: not a new window
    assert restored.add(at(ev("c", 70_000), 1), 2, 10_500) == 1  # behind partition 0, not late
    assert restored.close_due(10_500) == []

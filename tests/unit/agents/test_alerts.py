from agents.alerts import AlertEngine, AlertRules
from agents.windows import events_of
from streams.records import WindowStats
from tests.unit.agents.factories import result

MIN = 60_000


def window(start: int, count: int, mean: float | None, key: str = "BA") -> WindowStats:
    return WindowStats(
        dimension="entity",
        key=key,
        window="tumbling",
        start_ms=start,
        end_ms=start + MIN,
        count=count,
        sentiment_mean=mean,
        sentiment_n=count if mean is not None else 0,
        message_ids=[f"id{start}"],
        ts=0,
    )


def engine() -> AlertEngine:
    return AlertEngine(AlertRules(), MIN)


def test_calm_stream_raises_nothing():
    e = engine()
    alerts = [a for i in range(12) for a in e.on_window(window(i * MIN, 6, 0.1 if i % 2 else 0.0), 0)]
    assert alerts == []


def test_negative_burst_raises_volume_spike_and_sentiment_shift():
    e = engine()
    for i in range(5):
        assert e.on_window(window(i * MIN, 2, 0.2), 0) == []
    alerts = e.on_window(window(5 * MIN, 25, -0.9), 0)
    rules = {a.rule for a in alerts}
    assert rules == {"volume_spike", "sentiment_shift"}
    shift = next(a for a in alerts if a.rule == "sentiment_shift")
    assert shift.figures["z"] < -2.5 and shift.evidence == [f"id{5 * MIN}"]


def test_gaps_count_as_zero_volume():
    e = engine()
    e.on_window(window(0, 9, None), 0)
    e.on_window(window(MIN, 9, None), 0)
    e.on_window(window(2 * MIN, 9, None), 0)
    # ten empty minutes, then 9 again: baseline is mostly zeros -> spike
    alerts = e.on_window(window(13 * MIN, 9, None), 0)
    assert [a.rule for a in alerts] == ["volume_spike"]


def turn_events(n: int, sentiment: str = "negative"):
    turns = [
        result(f"t{i}", i, source="support-chat", key="conv-9", intent="card_lost", sentiment=sentiment)
        for i in range(n)
    ]
    return [e for t in turns for e in events_of(t) if e.dimension == "conversation"]


def test_escalation_after_three_negative_turns():
    e = engine()
    fired = [a for off, ev in enumerate(turn_events(4)) for a in e.on_turn(ev, off, 0)]
    assert len(fired) == 1 and fired[0].rule == "escalation" and fired[0].evidence == ["t0", "t1", "t2"]


def test_calm_conversation_does_not_escalate():
    e = engine()
    assert [a for off, ev in enumerate(turn_events(6, "positive")) for a in e.on_turn(ev, off, 0)] == []


def test_alert_state_survives_a_restore_and_replays_are_ignored():
    e = engine()
    events = turn_events(4)
    for off, ev in enumerate(events[:2]):
        e.on_turn(ev, off, 0)
    for i in range(4):
        e.on_window(window(i * MIN, 2, 0.2), 0)
    log = dict(e.changes())
    restored = engine()
    for key, state in log.items():
        assert restored.restore(key, state)
    assert restored.on_turn(events[1], 1, 0) == []  # a replay of turn 2: not counted again
    fired = restored.on_turn(events[2], 2, 0)
    assert [a.evidence for a in fired] == [["t0", "t1", "t2"]]
    spike = restored.on_window(window(4 * MIN, 25, -0.9), 0)
    assert {a.rule for a in spike} == {"volume_spike", "sentiment_shift"}  # the baseline came back

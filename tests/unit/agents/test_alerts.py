from agents.alerts import AlertEngine, AlertRules
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


def test_escalation_after_three_negative_turns():
    e = engine()
    turns = [
        result(
            f"t{i}",
            i,
            source="support-chat",
            key="conv-9",
            intent="card_lost",
            sentiment="negative",
        )
        for i in range(4)
    ]
    fired = [a for t in turns for a in e.on_result(t, 0)]
    assert len(fired) == 1 and fired[0].rule == "escalation" and fired[0].evidence == ["t0", "t1", "t2"]

"""The allocator's side of load: a model that invites a probe gets one batch, then waits;
backpressure pauses the input while a model's backlog is over the limit."""

import time

from aiokafka.structs import TopicPartition

from agents.infer import Meter
from agents.loads import LoadView
from agents.recognize import apply_backpressure, should_pause
from streams.records import ModelLoad

NOW = 1_000_000


def report(meter: Meter, lag: int, ts: int, model: str = "m", worker: str = "w") -> ModelLoad:
    per_item, batch = meter.live(lag, now=0.0)
    measured = meter.measured if meter.probe_wanted(lag) else None
    return ModelLoad(
        model_id=model,
        worker=worker,
        lag=lag,
        per_item_ms=per_item,
        batch_ms=batch,
        batch_size=meter.batch_size,
        throughput=0.0,
        probe=measured is not None,
        measured_per_item_ms=measured[0] if measured else None,
        measured_batch_ms=measured[1] if measured else None,
        ts=ts,
    )


def slow_meter() -> Meter:
    meter = Meter()
    meter.observe(20, 1000.0)  # one slow batch: 1 s
    meter.take_throughput()
    return meter


def test_idle_slowness_decays_by_half_life_and_invites_a_probe():
    meter = slow_meter()
    meter.decay_if_idle(lag=0, idle_s=2.0, half_life_s=2.0)
    assert meter.batch_ms == 500.0 and meter.per_item_ms == 25.0
    assert meter.probe_wanted(0)
    assert not meter.probe_wanted(3)  # work queued: the probe is on its way
    assert meter.live(3) == (50.0, 1000.0)  # queued: the measured figures stand


def test_no_decay_while_busy_queued_or_just_measured():
    meter = slow_meter()
    meter.start(5, now=0.0)
    meter.decay_if_idle(lag=0, idle_s=2.0, half_life_s=2.0)
    assert meter.batch_ms == 1000.0
    meter.finish()
    meter.decay_if_idle(lag=4, idle_s=2.0, half_life_s=2.0)
    assert meter.batch_ms == 1000.0
    meter.observe(5, 1000.0)  # finished a batch in this interval
    meter.decay_if_idle(lag=0, idle_s=2.0, half_life_s=2.0)
    assert meter.batch_ms == 1000.0


def test_a_running_probe_shows_the_old_figures_or_its_own_running_time():
    meter = slow_meter()
    meter.decay_if_idle(lag=0, idle_s=4.0, half_life_s=2.0)
    meter.start(2, now=0.0)
    assert not meter.probe_wanted(0)
    assert meter.live(0, now=0.1) == (50.0, 1000.0)
    assert meter.live(0, now=1.5) == (750.0, 1500.0)


def test_the_probe_replaces_the_forgotten_figures():
    meter = slow_meter()
    meter.decay_if_idle(lag=0, idle_s=4.0, half_life_s=2.0)
    meter.start(2, now=0.0)
    meter.observe(2, 20.0)
    meter.finish()
    assert (meter.per_item_ms, meter.batch_ms) == (10.0, 20.0)  # recovered at once
    assert not meter.probe_wanted(0)


def test_view_holds_a_probing_model_once_work_was_sent_after_its_report():
    meter = slow_meter()
    meter.decay_if_idle(lag=0, idle_s=4.0, half_life_s=2.0)
    view = LoadView()
    view.update(report(meter, lag=0, ts=NOW))
    invited = view.snapshot(NOW + 10)["m"]
    assert not invited.held and invited.batch_ms == 250.0  # forgotten: worth a probe
    view.note_sent({"m": 1}, NOW + 10)
    held = view.snapshot(NOW + 20)["m"]
    assert held.held and (held.per_item_ms, held.batch_ms) == (50.0, 1000.0)  # old figures
    meter.start(3, now=0.0)  # the probe runs: the next report is not a probe invitation
    view.update(report(meter, lag=0, ts=NOW + 500))
    load = view.snapshot(NOW + 510)["m"]
    assert not load.held and load.batch_ms == 1000.0


def test_a_model_that_was_only_idle_keeps_its_figures_when_held():
    meter = Meter()
    meter.observe(4, 20.0)  # fast
    meter.take_throughput()
    meter.decay_if_idle(lag=0, idle_s=1.0, half_life_s=2.0)
    view = LoadView()
    view.update(report(meter, lag=0, ts=NOW))
    view.note_sent({"m": 1}, NOW + 10)
    held = view.snapshot(NOW + 20)["m"]
    assert held.held and held.batch_ms == 20.0  # as measured: still feasible, still chosen


def test_a_never_measured_model_is_not_penalised():
    meter = Meter()
    meter.decay_if_idle(lag=0, idle_s=1.0, half_life_s=2.0)
    view = LoadView()
    view.update(report(meter, lag=0, ts=NOW))
    view.note_sent({"m": 1}, NOW + 10)
    assert view.snapshot(NOW + 20)["m"].batch_ms == 0.0  # the catalog's figures apply


def test_view_does_not_hold_when_another_worker_serves_normally():
    view = LoadView()
    probing = slow_meter()
    probing.decay_if_idle(lag=0, idle_s=4.0, half_life_s=2.0)
    view.update(report(probing, lag=0, ts=NOW, worker="a"))
    view.update(report(Meter(), lag=0, ts=NOW, worker="b"))
    view.note_sent({"m": 1}, NOW + 10)
    assert not view.snapshot(NOW + 20)["m"].held


def loaded_view(lag: int, ts: int = NOW) -> LoadView:
    view = LoadView()
    view.update(report(Meter(), lag=lag, ts=ts, model="a"))
    view.update(report(Meter(), lag=5, ts=ts, model="b"))
    return view


def test_backlog_is_the_worst_model_with_what_was_sent_since_its_report():
    view = loaded_view(lag=100)
    view.note_sent({"a": 50, "b": 500}, NOW - 10)  # before the report: already in its lag
    view.note_sent({"a": 30}, NOW + 10)
    view.note_sent({"b": 200}, NOW + 20)
    assert view.backlog(NOW + 30) == ("b", 205)
    view.note_sent({"a": 300}, NOW + 40)
    assert view.backlog(NOW + 50) == ("a", 430)


def test_no_fresh_reports_means_no_backlog():
    view = loaded_view(lag=10_000, ts=NOW)
    assert view.backlog(NOW + 60_000) == (None, 0)


def test_should_pause_at_the_limit_and_never_without_one():
    assert should_pause(2000, 2000) and not should_pause(1999, 2000)
    assert not should_pause(10**9, 0)


def test_once_paused_the_input_stays_paused_until_well_under_the_limit():
    assert should_pause(1600, 2000, paused=True)  # under the limit, over 75% of it
    assert not should_pause(1499, 2000, paused=True)


class FakeConsumer:
    def __init__(self, parts: set[TopicPartition]) -> None:
        self.parts, self.held = parts, set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.parts)

    def paused(self) -> set[TopicPartition]:
        return set(self.held)

    def pause(self, *tps: TopicPartition) -> None:
        self.held |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.held -= set(tps)


def test_input_pauses_over_the_limit_and_resumes_under_it():
    parts = {TopicPartition("sf.in", p) for p in range(3)}
    consumer = FakeConsumer(parts)
    now = int(time.time() * 1000)
    apply_backpressure(consumer, loaded_view(lag=2500, ts=now), limit=2000)
    assert consumer.paused() == parts
    apply_backpressure(consumer, loaded_view(lag=1800, ts=now), limit=2000)
    assert consumer.paused() == parts  # not yet: under the limit but not under 75% of it
    apply_backpressure(consumer, loaded_view(lag=1400, ts=now), limit=2000)
    assert consumer.paused() == set()

"""StreamApp's commit paths against fake clients (the real broker is in tests/integration)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from streams.app import Outgoing, StreamApp
from streams.settings import Settings


class FakeProducer:
    def __init__(self, fail_on_send: bool = False) -> None:
        self.calls: list[tuple] = []
        self.fail_on_send = fail_on_send

    async def begin_transaction(self) -> None:
        self.calls.append(("begin",))

    async def send(self, topic, value=None, key=None, partition=None):
        if self.fail_on_send:
            raise RuntimeError("broker went away")
        self.calls.append(("send", topic, key, partition))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def send_offsets_to_transaction(self, offsets, group_id) -> None:
        self.calls.append(("offsets", dict(offsets), group_id))

    async def commit_transaction(self) -> None:
        self.calls.append(("commit",))

    async def abort_transaction(self) -> None:
        self.calls.append(("abort",))


class FakeConsumer:
    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def eos_app(producer: FakeProducer, consumer: FakeConsumer) -> StreamApp:
    app = StreamApp(Settings(broker="kafka://127.0.0.1:1", processing_guarantee="exactly_once"), worker="w1")
    app._txn[consumer] = ("sf.fuse", producer)  # type: ignore[index]
    app._batch_lock[consumer] = asyncio.Lock()  # type: ignore[index]
    return app


def test_outputs_and_offsets_commit_in_one_transaction():
    producer = FakeProducer()
    consumer = FakeConsumer({TopicPartition("sf.plans", 0)})
    app = eos_app(producer, consumer)
    out = [Outgoing("sf.results", b"r1", b"k1"), Outgoing("sf.monitor.changelog", None, b"w", 3)]
    offsets = {("sf.plans", 0): 11, ("sf.plans", 5): 7}  # partition 5 is no longer ours
    assert asyncio.run(app.complete(consumer, out, offsets))
    assert producer.calls == [
        ("begin",),
        ("send", "sf.results", b"k1", None),
        ("send", "sf.monitor.changelog", b"w", 3),
        ("offsets", {TopicPartition("sf.plans", 0): 11}, "sf.fuse"),
        ("commit",),
    ]


def test_a_failed_transaction_is_aborted_and_raised():
    producer = FakeProducer(fail_on_send=True)
    consumer = FakeConsumer({TopicPartition("sf.plans", 0)})
    app = eos_app(producer, consumer)
    with pytest.raises(RuntimeError, match="broker went away"):
        asyncio.run(app.complete(consumer, [Outgoing("sf.results", b"r")], {("sf.plans", 0): 1}))
    assert producer.calls == [("begin",), ("abort",)]


def test_nothing_to_do_opens_no_transaction():
    producer = FakeProducer()
    consumer = FakeConsumer(set())
    app = eos_app(producer, consumer)
    assert asyncio.run(app.complete(consumer, [], {("sf.plans", 0): 1}))
    assert producer.calls == []


def _revocation_order(app: StreamApp, consumer: FakeConsumer) -> list[str]:
    order: list[str] = []

    async def scenario() -> None:
        lock = app._batch_lock[consumer]  # type: ignore[index]
        revoke = app._after_batch(consumer, lambda revoked: order.append("revoked"))  # type: ignore[arg-type]
        await lock.acquire()  # a batch is being processed
        task = asyncio.create_task(revoke({TopicPartition("sf.plans", 0)}))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        order.append("batch committed")
        lock.release()
        await task

    asyncio.run(scenario())
    return order


def test_a_revocation_waits_for_the_batch_in_hand():
    consumer = FakeConsumer({TopicPartition("sf.plans", 0)})
    assert _revocation_order(eos_app(FakeProducer(), consumer), consumer) == ["batch committed", "revoked"]


def test_at_least_once_a_revocation_also_waits_for_the_batch_in_hand():
    # fuse's callback commits what its tracker released: run beside a batch whose outputs
    # are still in flight, it would commit offsets of results not yet acknowledged.
    consumer = FakeConsumer({TopicPartition("sf.plans", 0)})
    app = StreamApp(Settings(broker="kafka://127.0.0.1:1"), worker="w1")
    app._batch_lock[consumer] = asyncio.Lock()  # type: ignore[index]
    assert _revocation_order(app, consumer) == ["batch committed", "revoked"]


def test_consumers_fetch_with_kafkas_defaults_unless_a_fetch_linger_is_set():
    from streams.app import FETCH_LINGER_MIN_BYTES, fetch_options

    assert fetch_options(Settings()) == {}
    assert fetch_options(Settings(fetch_linger_ms=25)) == {
        "fetch_min_bytes": FETCH_LINGER_MIN_BYTES,
        "fetch_max_wait_ms": 25,
    }


P0, P1 = TopicPartition("sf.input", 0), TopicPartition("sf.input", 1)


def alo_app(interval_ms: int) -> StreamApp:
    return StreamApp(Settings(broker="kafka://127.0.0.1:1", commit_interval_ms=interval_ms), worker="w1")


def test_without_an_interval_every_batch_commits():
    consumer = FakeConsumer({P0})
    app = alo_app(0)
    for offset in (3, 5):
        assert asyncio.run(app.commit(consumer, {("sf.input", 0): offset}))
    assert consumer.commits == [{P0: 3}, {P0: 5}]


def test_an_interval_coalesces_commits_into_the_highest_offsets():
    consumer = FakeConsumer({P0, P1})
    app = alo_app(60_000)

    async def scenario() -> None:
        assert await app.commit(consumer, {("sf.input", 0): 3})  # the first commit is due
        assert await app.commit(consumer, {("sf.input", 0): 5, ("sf.input", 1): 2})
        assert await app.commit(consumer, {("sf.input", 0): 4})  # stale offset: never backwards
        assert consumer.commits == [{P0: 3}]
        assert await app.flush_commits(consumer)

    asyncio.run(scenario())
    assert consumer.commits == [{P0: 3}, {P0: 5, P1: 2}]


def test_deferred_offsets_are_committed_once_the_interval_has_passed():
    consumer = FakeConsumer({P0})
    app = alo_app(30)

    async def scenario() -> None:
        await app.commit(consumer, {("sf.input", 0): 1})
        await app.commit(consumer, {("sf.input", 0): 2})
        assert not app._commit_due(consumer)
        await asyncio.sleep(0.05)
        assert app._commit_due(consumer)
        await app.commit(consumer, {("sf.input", 0): 3})

    asyncio.run(scenario())
    assert consumer.commits == [{P0: 1}, {P0: 3}]


def test_a_revocation_commits_deferred_offsets_after_the_batch_in_hand():
    consumer = FakeConsumer({P0, P1})
    app = alo_app(60_000)
    app._batch_lock[consumer] = asyncio.Lock()  # type: ignore[index]

    async def scenario() -> None:
        await app.commit(consumer, {("sf.input", 0): 1})
        revoked, _ = app._tracked(consumer, app._after_batch(consumer, lambda tps: None), None)  # type: ignore[arg-type]
        lock = app._batch_lock[consumer]  # type: ignore[index]
        await lock.acquire()  # a batch is being published
        task = asyncio.create_task(revoked({P0}))  # type: ignore[arg-type]
        await asyncio.sleep(0.02)
        assert consumer.commits == [{P0: 1}]  # nothing more until that batch is done
        await app.commit(consumer, {("sf.input", 0): 7, ("sf.input", 1): 4})
        lock.release()
        await task

    asyncio.run(scenario())
    assert consumer.commits == [{P0: 1}, {P0: 7, P1: 4}]
    assert not app._pending.get(consumer)


def test_deferred_offsets_of_partitions_no_longer_assigned_are_not_committed():
    consumer = FakeConsumer({P0, P1})
    app = alo_app(60_000)

    async def scenario() -> None:
        await app.commit(consumer, {("sf.input", 0): 1})
        await app.commit(consumer, {("sf.input", 1): 9})
        consumer.assigned = {P0}  # partition 1 moved to another member
        assert not await app.flush_commits(consumer)

    asyncio.run(scenario())
    assert consumer.commits == [{P0: 1}]


def test_closing_a_consumer_commits_what_was_deferred():
    consumer = FakeConsumer({P0})
    app = alo_app(60_000)

    async def stop() -> None:
        consumer.stopped = True  # type: ignore[attr-defined]

    consumer.stop = stop  # type: ignore[attr-defined]

    async def scenario() -> None:
        await app.commit(consumer, {("sf.input", 0): 1})
        await app.commit(consumer, {("sf.input", 0): 6})
        await app._close(consumer)  # type: ignore[arg-type]

    asyncio.run(scenario())
    assert consumer.commits == [{P0: 1}, {P0: 6}]
    assert consumer.stopped  # type: ignore[attr-defined]


def test_exactly_once_never_defers_offsets():
    producer = FakeProducer()
    consumer = FakeConsumer({P0})
    settings = Settings(
        broker="kafka://127.0.0.1:1", processing_guarantee="exactly_once", commit_interval_ms=60_000
    )
    app = StreamApp(settings, worker="w1")
    app._txn[consumer] = ("sf.recognize", producer)  # type: ignore[index]
    for offset in (2, 3):
        assert asyncio.run(app.complete(consumer, [], {("sf.input", 0): offset}))
    assert [c for c in producer.calls if c[0] == "offsets"] == [
        ("offsets", {P0: 2}, "sf.recognize"),
        ("offsets", {P0: 3}, "sf.recognize"),
    ]
    assert not app._pending

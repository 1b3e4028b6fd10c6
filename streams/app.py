"""The stream application: one producer, consumer groups, micro-batches and
commit-after-produce.

Stages are written against this module, not against Kafka clients directly:

    async for batch in app.batches(consumer, max_records=64, wait_ms=20):
        out = pure_function(batch)            # no I/O
        await app.publish(out)                # waits for every delivery
        await app.commit_batch(consumer, batch)

Offsets are committed only after everything produced from them has been acknowledged
(acks=all, idempotent producer), so a crash at any point redelivers rather than loses.
With ``processing_guarantee=exactly_once`` each consumer gets its own transactional producer
and ``complete`` publishes a batch's outputs and commits its offsets in one Kafka
transaction (consume-transform-produce, as Kafka Streams does it), so a crash repeats
nothing that a ``read_committed`` reader can see.
Faust is not used for these loops: see bench/faust_trial/REPORT.md for the measurement.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from streams.settings import Settings, get_settings
from streams.topics import Topics, get_topics

log = logging.getLogger(__name__)
# With fetch_linger_ms, a fetch returns early only once this much is ready: at the rates
# where lingering would pay, that is never, so the linger sets the pace.
FETCH_LINGER_MIN_BYTES = 64 * 1024


def fetch_options(settings: Settings) -> dict[str, int]:
    """The stages' consumer fetch settings: aiokafka's defaults unless ``fetch_linger_ms``."""
    if settings.fetch_linger_ms <= 0:
        return {}
    return {"fetch_min_bytes": FETCH_LINGER_MIN_BYTES, "fetch_max_wait_ms": settings.fetch_linger_ms}


# The role whose code is running (set by the worker's supervisor): consumers are tagged with
# it so that a failed role's consumers can be closed before the role restarts.
current_role: contextvars.ContextVar[str] = contextvars.ContextVar("current_role", default="")


@dataclass(slots=True, frozen=True)
class Outgoing:
    """One record to publish."""

    topic: str
    value: bytes | None  # None: a tombstone (compacted topics)
    key: bytes | None = None
    partition: int | None = None  # None: by key (changelogs name their partition)


def _still_assigned(
    consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """The offsets of partitions the consumer still owns: after a rebalance took one away,
    its new owner commits it (committing it here would fail, or move its offset back)."""
    assigned = consumer.assignment()
    return {tp: o for tp, o in offsets.items() if tp in assigned}


def batch_offsets(batch: Iterable[ConsumerRecord]) -> dict[tuple[str, int], int]:
    """One past the last offset of every partition in ``batch``."""
    offsets: dict[tuple[str, int], int] = {}
    for rec in batch:
        tp = (rec.topic, rec.partition)
        offsets[tp] = max(offsets.get(tp, 0), rec.offset + 1)
    return offsets


async def _fetch(consumer: AIOKafkaConsumer, wait_ms: int, max_records: int) -> list[ConsumerRecord] | None:
    """One ``getmany``, flattened across partitions; None while the consumer has no
    assignment (a rebalance in progress)."""
    try:
        got = await consumer.getmany(timeout_ms=wait_ms, max_records=max_records)
    except IllegalStateError:
        return None
    return [rec for recs in got.values() for rec in recs]


class _Listener(ConsumerRebalanceListener):
    def __init__(
        self,
        on_revoked: Callable[[set[TopicPartition]], object] | None,
        on_assigned: Callable[[set[TopicPartition]], object] | None,
    ) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self._on_revoked is not None:
            result = self._on_revoked(set(revoked))
            if asyncio.iscoroutine(result):
                await result

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._on_assigned is not None:
            result = self._on_assigned(set(assigned))
            if asyncio.iscoroutine(result):
                await result


class StreamApp:
    """Shared Kafka plumbing for the stages of one worker process."""

    def __init__(self, settings: Settings | None = None, worker: str | None = None) -> None:
        self.settings = settings or get_settings()
        self.topics: Topics = get_topics(self.settings)
        self.worker = worker or f"{socket.gethostname()}-{os.getpid()}"
        self.stopping = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._consumers: list[tuple[str, AIOKafkaConsumer]] = []
        # exactly_once: one transactional producer per consumer
        self._txn: dict[AIOKafkaConsumer, tuple[str, AIOKafkaProducer]] = {}
        # Held while a stage works on a batch of that group consumer (see _after_batch).
        self._batch_lock: dict[AIOKafkaConsumer, asyncio.Lock] = {}
        # Each group consumer's partitions as its rebalance callbacks reported them (assigned).
        self._assigned: dict[AIOKafkaConsumer, set[TopicPartition]] = {}
        # at_least_once with commit_interval_ms: offsets of published batches not yet
        # committed, and when each consumer last committed (see commit).
        self._pending: dict[AIOKafkaConsumer, dict[TopicPartition, int]] = {}
        self._last_commit: dict[AIOKafkaConsumer, float] = {}

    @property
    def exactly_once(self) -> bool:
        """True when stages publish and commit in Kafka transactions."""
        return self.settings.processing_guarantee == "exactly_once"

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        producer = AIOKafkaProducer(
            **self.settings.client_kwargs(),
            client_id=f"streamfuse-{self.worker}",
            acks="all",
            enable_idempotence=True,
            linger_ms=self.settings.linger_ms,
            max_batch_size=256 * 1024,
            request_timeout_ms=30_000,
        )
        await producer.start()  # raises while the broker is unreachable; retried by the worker
        self._producer = producer

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def stop(self) -> None:
        self.stopping.set()
        for _, consumer in self._consumers:
            await self._close(consumer)
        self._consumers.clear()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("StreamApp.start() was not awaited")
        return self._producer

    # --- consuming --------------------------------------------------------------------
    async def consumer(
        self,
        topics: Sequence[str],
        group: str | None,
        *,
        on_revoked: Callable[[set[TopicPartition]], object] | None = None,
        on_assigned: Callable[[set[TopicPartition]], object] | None = None,
        auto_offset_reset: str = "earliest",
        max_poll_records: int | None = None,
        co_partitioned: bool = False,
    ) -> AIOKafkaConsumer:
        """A started consumer in ``group`` (commits are manual), subscribed to ``topics``.

        ``co_partitioned`` uses range assignment, which gives partition p of every topic to
        the same member: the join in fuse depends on it (round robin would split them).
        """
        s = self.settings
        extra: dict[str, object] = {}
        if co_partitioned:
            extra["partition_assignment_strategy"] = (RangePartitionAssignor,)
        extra |= fetch_options(s)
        consumer = AIOKafkaConsumer(
            **s.client_kwargs(),
            group_id=group,
            client_id=f"streamfuse-{self.worker}",
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            rebalance_timeout_ms=s.session_timeout_ms,
            max_poll_records=max_poll_records,
            isolation_level="read_committed",
            **extra,
        )
        await consumer.start()
        if self.exactly_once and group is not None:
            await self._start_txn(consumer, group)
        if group is not None and on_revoked is not None:
            self._batch_lock[consumer] = asyncio.Lock()
            on_revoked = self._after_batch(consumer, on_revoked)
        if group is None:
            consumer.subscribe(list(topics))
        else:
            listener = _Listener(*self._tracked(consumer, on_revoked, on_assigned))
            consumer.subscribe(list(topics), listener=listener)
        self._consumers.append((current_role.get(), consumer))
        return consumer

    def assigned(self, consumer: AIOKafkaConsumer) -> set[TopicPartition]:
        """The partitions of ``consumer``'s current group generation: empty from the moment
        a rebalance revokes them until the next assignment.

        Stages that restore state per partition use this, not ``consumer.assignment()``:
        while a rebalance is in progress aiokafka still reports the revoked partitions
        there, and state restored for them would count as current after the revocation
        (a later generation that gives one back would skip its restore).
        """
        return set(self._assigned.get(consumer, ()))

    def _tracked(
        self,
        consumer: AIOKafkaConsumer,
        on_revoked: Callable[[set[TopicPartition]], object] | None,
        on_assigned: Callable[[set[TopicPartition]], object] | None,
    ) -> tuple[Callable[[set[TopicPartition]], object], Callable[[set[TopicPartition]], object]]:
        """Rebalance callbacks that record the assignment (see ``assigned``), then call the
        stage's own."""
        self._assigned[consumer] = set()

        def revoked(tps: set[TopicPartition]) -> object:
            self._assigned[consumer] = set()
            result = on_revoked(tps) if on_revoked is not None else None
            if asyncio.iscoroutine(result) or self._pending.get(consumer):
                return self._flush_after(consumer, tps, result)
            return result

        def assigned(tps: set[TopicPartition]) -> object:
            self._assigned[consumer] = set(tps)
            return on_assigned(tps) if on_assigned is not None else None

        return revoked, assigned

    async def _flush_after(
        self, consumer: AIOKafkaConsumer, revoked: set[TopicPartition], result: object
    ) -> None:
        """Await a stage's revocation callback (which waits for the batch in hand), then commit
        the deferred offsets, that batch's among them, before the partitions move."""
        if asyncio.iscoroutine(result):
            await result
        await self.flush_commits(consumer)
        pending = self._pending.get(consumer)
        if pending:
            for tp in revoked:
                pending.pop(tp, None)

    async def _start_txn(self, consumer: AIOKafkaConsumer, group: str) -> None:
        # A stable id per (group, worker name): a worker restarted under the same name fences
        # its dead predecessor and aborts its open transaction at once.
        producer = AIOKafkaProducer(
            **self.settings.client_kwargs(),
            client_id=f"streamfuse-{self.worker}",
            acks="all",
            enable_idempotence=True,
            transactional_id=f"{group}.{self.worker}",
            transaction_timeout_ms=self.settings.transaction_timeout_ms,
            linger_ms=self.settings.linger_ms,
            max_batch_size=256 * 1024,
            request_timeout_ms=30_000,
        )
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._txn[consumer] = (group, producer)

    async def _stop_txn(self, consumer: AIOKafkaConsumer) -> None:
        entry = self._txn.pop(consumer, None)
        if entry is not None:
            with contextlib.suppress(Exception):
                await entry[1].stop()

    def _after_batch(
        self, consumer: AIOKafkaConsumer, callback: Callable[[set[TopicPartition]], object]
    ) -> Callable[[set[TopicPartition]], object]:
        """Run a revocation callback only once the batch in hand is done: a partition must
        not move while its transaction is open (exactly_once), and a callback that commits
        must not commit offsets whose outputs are still being published (at_least_once:
        aiokafka runs the callback in its own task, beside the stage's loop)."""

        async def wrapped(revoked: set[TopicPartition]) -> None:
            lock = self._batch_lock.get(consumer)
            if lock is None:
                result = callback(revoked)
            else:
                try:
                    await asyncio.wait_for(lock.acquire(), timeout=self.settings.session_timeout_ms / 1000)
                except TimeoutError:
                    # The loop died holding its batch (its role restarts): nothing to wait for.
                    log.warning("revoking %s without the batch lock", sorted(map(str, revoked)))
                    result = callback(revoked)
                else:
                    try:
                        result = callback(revoked)
                        if asyncio.iscoroutine(result):
                            result = await result
                    finally:
                        lock.release()
            if asyncio.iscoroutine(result):
                await result

        return wrapped

    async def close_consumers(self, role: str) -> None:
        """Stop the consumers a role opened (before the supervisor restarts it)."""
        keep = []
        for owner, consumer in self._consumers:
            if owner == role:
                await self._close(consumer)
            else:
                keep.append((owner, consumer))
        self._consumers = keep

    async def _close(self, consumer: AIOKafkaConsumer) -> None:
        """Commit what is pending, stop one consumer and forget what the app kept for it."""
        with contextlib.suppress(Exception):
            await self.flush_commits(consumer)
        with contextlib.suppress(Exception):
            await consumer.stop()
        self._pending.pop(consumer, None)
        self._last_commit.pop(consumer, None)
        await self._stop_txn(consumer)
        self._batch_lock.pop(consumer, None)
        self._assigned.pop(consumer, None)

    async def batches(
        self, consumer: AIOKafkaConsumer, max_records: int, wait_ms: int
    ) -> AsyncIterator[list[ConsumerRecord]]:
        """Micro-batches: up to ``max_records``, waiting at most ``wait_ms`` to fill one.

        Yields an empty list when the wait ran out with nothing to read, so that callers
        can run timers (deadlines, window closes) without a separate task. A consumer with
        a revocation callback has a batch lock, held while the caller works on a batch, so
        that a rebalance waits for the batch to be published and committed.
        """
        lock = self._batch_lock.get(consumer)
        while not self.stopping.is_set():
            batch = await _fetch(consumer, wait_ms, max_records)
            if self._commit_due(consumer):
                await self.flush_commits(consumer)  # offsets deferred before a lull
            if batch is None:
                await asyncio.sleep(0.1)  # no assignment yet during a rebalance
                continue
            if lock is None:
                yield batch
            else:
                async with lock:
                    yield batch

    async def more(self, consumer: AIOKafkaConsumer, max_records: int) -> list[ConsumerRecord]:
        """Up to ``max_records`` records already fetched for ``consumer``, without waiting.

        For a caller inside a batch from :meth:`batches` (its batch lock held, so the
        assignment cannot change): what arrived since joins that batch, and committing the
        batch's last offsets covers it.
        """
        if max_records <= 0:
            return []
        return await _fetch(consumer, 0, max_records) or []

    async def commit(self, consumer: AIOKafkaConsumer, offsets: dict[tuple[str, int], int]) -> bool:
        """Commit explicit offsets; False when a rebalance took the partitions away.

        With ``commit_interval_ms`` (at_least_once), offsets are kept and committed with
        later ones once the interval has passed since this consumer's last commit, and on a
        rebalance or shutdown: True then means "will be committed". Callers pass only
        offsets whose outputs are acknowledged, so a deferred commit is never ahead of them.
        """
        if not offsets:
            return True
        tps = _still_assigned(consumer, {TopicPartition(t, p): o for (t, p), o in offsets.items()})
        if not tps:
            return False
        if self.settings.commit_interval_ms > 0 and consumer not in self._txn:
            pending = self._pending.setdefault(consumer, {})
            for tp, offset in tps.items():
                pending[tp] = max(offset, pending.get(tp, offset))
            if self._commit_due(consumer):
                return await self.flush_commits(consumer)
            return True
        return await self._commit_now(consumer, tps)

    def _commit_due(self, consumer: AIOKafkaConsumer) -> bool:
        """Whether deferred offsets wait and the commit interval has passed."""
        if not self._pending.get(consumer):
            return False
        since = time.monotonic() - self._last_commit.get(consumer, 0.0)
        return since * 1000 >= self.settings.commit_interval_ms

    async def flush_commits(self, consumer: AIOKafkaConsumer) -> bool:
        """Commit the offsets deferred by ``commit`` for partitions still assigned."""
        pending = self._pending.pop(consumer, None)
        if not pending:
            return True
        tps = _still_assigned(consumer, pending)
        return await self._commit_now(consumer, tps) if tps else False

    async def _commit_now(self, consumer: AIOKafkaConsumer, tps: dict[TopicPartition, int]) -> bool:
        self._last_commit[consumer] = time.monotonic()
        try:
            await consumer.commit(tps)
            return True
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # The records will be redelivered to the partitions' new owner: duplicates,
            # never loss. fuse drops them by message id.
            log.warning("commit failed (%s); records will be redelivered", exc)
            return False

    async def commit_batch(self, consumer: AIOKafkaConsumer, batch: Iterable[ConsumerRecord]) -> bool:
        """Commit one past the last offset of every partition in the batch."""
        return await self.commit(consumer, batch_offsets(batch))

    async def complete(
        self,
        consumer: AIOKafkaConsumer,
        records: Sequence[Outgoing],
        offsets: dict[tuple[str, int], int],
    ) -> bool:
        """Publish a batch's outputs and commit its input offsets.

        at_least_once: publish and wait for every acknowledgement, then commit (False when a
        rebalance took the partitions away: the records are redelivered, never lost).
        exactly_once: both in one transaction; any failure aborts it and raises, so that the
        role restarts from the committed offsets and rebuilds its state.
        """
        txn = self._txn.get(consumer)
        if txn is None:
            await self.publish(records)
            return await self.commit(consumer, offsets)
        group, producer = txn
        tps = _still_assigned(consumer, {TopicPartition(t, p): o for (t, p), o in offsets.items()})
        if not records and not tps:
            return True
        await producer.begin_transaction()
        try:
            futures = [
                await producer.send(r.topic, value=r.value, key=r.key, partition=r.partition) for r in records
            ]
            if tps:
                await producer.send_offsets_to_transaction(tps, group)
            await producer.commit_transaction()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.abort_transaction()
            raise
        if futures:
            await asyncio.gather(*futures)  # resolved by the commit; raises if one was refused
        return True

    async def complete_batch(
        self, consumer: AIOKafkaConsumer, records: Sequence[Outgoing], batch: Iterable[ConsumerRecord]
    ) -> bool:
        """``complete`` with the offsets one past the last record of each partition in ``batch``."""
        return await self.complete(consumer, records, batch_offsets(batch))

    # --- producing --------------------------------------------------------------------
    async def publish(self, records: Iterable[Outgoing]) -> None:
        """Send all records and wait until the broker acknowledged every one."""
        futures = [
            await self.producer.send(r.topic, value=r.value, key=r.key, partition=r.partition)
            for r in records
        ]
        if futures:
            await asyncio.gather(*futures)

    async def lag(self, consumer: AIOKafkaConsumer) -> int:
        """Records behind the end of the assigned partitions (this consumer's share)."""
        total = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                pos = await consumer.position(tp)
            except (IllegalStateError, KafkaError):
                continue
            total += max(0, high - pos)
        return total

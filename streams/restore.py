"""Reading state back from topics when a stage is given partitions (group-less readers).

Stateful stages keep their state in Kafka, not on local disk, so any worker can take over
a partition: fuse re-reads the ids it already finished from ``sf.results``; the window
table replays its changelog. These helpers read partitions up to the end they have when
the read starts (``read_committed``: aborted transactions are skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Set

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.settings import Settings

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def _reader(
    settings: Settings, tps: list[TopicPartition], isolation_level: str = "read_committed"
) -> AsyncIterator[tuple[AIOKafkaConsumer, dict[TopicPartition, int]]]:
    """A started group-less consumer assigned ``tps``, and each partition's end offset (the
    last stable offset under ``read_committed``, the high watermark otherwise)."""
    consumer = AIOKafkaConsumer(
        **settings.client_kwargs(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation_level,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        yield consumer, await consumer.end_offsets(tps)
    finally:
        await consumer.stop()


async def wait_stable(settings: Settings, tps: list[TopicPartition], timeout_s: float | None = None) -> bool:
    """Wait until everything written to ``tps`` before the call is committed or aborted:
    the ``read_committed`` end (the last stable offset) reaches the high watermark seen at
    the start. False if ``timeout_s`` passed first (by default a little longer than the
    transaction timeout, after which the broker aborts a dead writer's transaction).

    A transaction's commit returns before its markers are written, so a worker that takes
    over a partition right after the previous owner committed could otherwise read to an
    end that stops short of the last results (and replay what they finished). Without
    transactions the two ends are equal and this returns at once.
    """
    if not tps:
        return True
    if timeout_s is None:
        timeout_s = settings.transaction_timeout_ms / 1000 + 5
    async with _reader(settings, tps, "read_uncommitted") as (_, high):
        pass  # only its end offsets (high watermarks) are needed
    deadline = time.monotonic() + timeout_s
    async with _reader(settings, tps) as (consumer, ends):
        while True:
            pending = [tp for tp in tps if ends[tp] < high[tp]]
            if not pending:
                return True
            if time.monotonic() > deadline:
                log.warning(
                    "%s not stable after %.0fs: an open transaction", sorted(map(str, pending)), timeout_s
                )
                return False
            await asyncio.sleep(0.2)
            ends.update(await consumer.end_offsets(pending))


async def read_to_end(
    settings: Settings, starts: dict[TopicPartition, int | None], timeout_s: float = 120.0
) -> list[ConsumerRecord]:
    """Every record of each partition from its start offset (None = the beginning) up to
    the partition's end when the read starts (raises TimeoutError past ``timeout_s``)."""
    if not starts:
        return []
    async with _reader(settings, list(starts)) as (consumer, ends):
        begins = await consumer.beginning_offsets(list(starts))
        todo = {}
        for tp, start in starts.items():
            first = begins[tp] if start is None else max(start, begins[tp])
            if first < ends[tp]:
                consumer.seek(tp, first)
                todo[tp] = ends[tp]
        out: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"restore of {sorted(map(str, todo))} did not reach the end in {timeout_s}s"
                )
            got = await consumer.getmany(*todo, timeout_ms=500, max_records=5000)
            for recs in got.values():
                out.extend(recs)
            for tp in list(todo):
                # Positions pass aborted records and transaction markers too.
                if await consumer.position(tp) >= todo[tp]:
                    del todo[tp]
        return out


def partitions_to_restore(
    batch: Iterable[ConsumerRecord], assigned: Iterable[TopicPartition], restored: Set[int]
) -> set[int]:
    """The partitions whose state must be read back before ``batch`` is processed: those of
    the current assignment (``StreamApp.assigned``, empty during a rebalance) and of the
    batch's records (current too, and possibly handed out before the assignment callback
    ran), less those already restored in this generation."""
    return ({tp.partition for tp in assigned} | {rec.partition for rec in batch}) - set(restored)


async def first_timestamps(
    settings: Settings, starts: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """The timestamp of the first readable record at or after each start offset (partitions
    with nothing there are left out)."""
    if not starts:
        return {}
    async with _reader(settings, list(starts)) as (consumer, ends):
        todo = {tp for tp, off in starts.items() if off < ends[tp]}
        for tp in todo:
            consumer.seek(tp, starts[tp])
        found: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + 30
        while todo and time.monotonic() < deadline:
            got = await consumer.getmany(*todo, timeout_ms=500, max_records=1)
            for tp, recs in got.items():
                if recs:
                    found[tp] = recs[0].timestamp
                    todo.discard(tp)
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        return found


async def offsets_since(settings: Settings, since: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The first offset of each partition with a timestamp at or after its time (ms);
    partitions with no such record are left out."""
    if not since:
        return {}
    async with _reader(settings, list(since)) as (consumer, _):
        found = await consumer.offsets_for_times(since)
        return {tp: ot.offset for tp, ot in found.items() if ot is not None}

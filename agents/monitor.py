"""monitor: windows per source, entity and conversation; alert rules.

Two loops, as a Faust agent with ``group_by`` would run them:

    route:     sf.results -> sf.monitor.events   one WindowEvent per (dimension, key),
                                                 keyed dimension:key (a repartition)
    aggregate: sf.monitor.events -> sf.windows (WindowStats) + sf.alerts (Alerts)
               state: one WindowTable + AlertEngine per event partition, written to the
               compacted sf.monitor.changelog (partition p's state in partition p)

A worker given partition p of the events restores p's table from the changelog before it
reads, so windows resume where the previous owner left them, on any worker. With
exactly_once, outputs, state changes and offsets go in one transaction. With
at_least_once, outputs are acknowledged before the state that records them as emitted, and
each window and conversation remembers the last event offset it applied, so a replay
neither double-counts nor loses a window (it may repeat one, with the same figures).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeVar

import orjson
from aiokafka import ConsumerRecord, TopicPartition
from pydantic import BaseModel, ValidationError

from agents.alerts import AlertEngine, AlertRules
from agents.validate import Where, dead_letter
from agents.windows import WindowTable, event_key, events_of
from streams import metrics
from streams.admin import partition_count
from streams.app import Outgoing, StreamApp, batch_offsets
from streams.codec import dumps, key_bytes, loads
from streams.records import Result, WindowEvent
from streams.restore import partitions_to_restore, read_to_end, wait_stable

log = logging.getLogger(__name__)
GROUP = "monitor"
T = TypeVar("T", bound=BaseModel)
ROUTE_GROUP = "monitor-route"


async def run(app: StreamApp, rules: AlertRules | None = None) -> None:
    """Both monitor loops; if one fails, both stop (and the role restarts)."""
    async with asyncio.TaskGroup() as tg:
        tg.create_task(route(app))
        tg.create_task(aggregate(app, rules))


async def route(app: StreamApp) -> None:
    """Results in, one WindowEvent per window key out (stateless)."""
    s = app.settings
    consumer = await app.consumer([app.topics.results], group=f"{s.topic_prefix}{ROUTE_GROUP}")
    async for batch in app.batches(consumer, s.batch_max * 4, s.batch_wait_ms * 5):
        if not batch:
            continue
        out: list[Outgoing] = []
        for rec in batch:
            res = _decode(app, rec, Result, out)
            if res is None:
                continue
            out += [
                Outgoing(app.topics.monitor_events, dumps(ev), key_bytes(event_key(ev)))
                for ev in events_of(res, rec.partition)
            ]
        await app.complete_batch(consumer, out, batch)


def _decode(app: StreamApp, rec: ConsumerRecord, model: type[T], dlq: list[Outgoing]) -> T | None:
    """The record as ``model``; an undecodable one becomes a dead letter (appended to ``dlq``)."""
    try:
        return loads(rec.value, model)
    except (ValidationError, ValueError) as exc:
        where = Where(rec.topic, rec.partition, rec.offset)
        dl = dead_letter(rec.value, "bad_internal_record", f"undecodable: {exc}", "monitor", where)
        dlq.append(Outgoing(app.topics.dlq, dumps(dl)))
        return None


class PartitionState:
    """One event partition's windows and alert state, restorable from the changelog."""

    def __init__(self, app: StreamApp, rules: AlertRules, source_partitions: int) -> None:
        s = app.settings
        self.table = WindowTable(s.window_size_s, s.window_hop_s, s.window_grace_s, source_partitions)
        self.engine = AlertEngine(rules, s.window_size_s * 1000)

    def restore(self, key: str, state: dict[str, Any] | None, wall_ms: int) -> None:
        if not self.table.restore(key, state, wall_ms) and not self.engine.restore(key, state):
            log.warning("unknown changelog entry %r", key)

    def changes(self) -> list[tuple[str, dict[str, Any] | None]]:
        return self.table.changes() + self.engine.changes()


async def restore_partitions(
    app: StreamApp, rules: AlertRules, partitions: set[int], source_partitions: int
) -> dict[int, PartitionState]:
    """Rebuild the given partitions' state from the changelog (latest entry per key);
    ``source_partitions``: how many partitions sf.results has (the watermark waits for each)."""
    states = {p: PartitionState(app, rules, source_partitions) for p in partitions}
    starts: dict[TopicPartition, int | None] = {
        TopicPartition(app.topics.monitor_changelog, p): None for p in partitions
    }
    latest: dict[int, dict[str, bytes | None]] = {p: {} for p in partitions}
    # The previous owner's last transaction may be committed but not yet readable: without
    # the wait its changelog entries would be missed while its input offsets count as done.
    await wait_stable(app.settings, list(starts))
    for rec in await read_to_end(app.settings, starts):
        latest[rec.partition][rec.key.decode()] = rec.value
    wall = int(time.time() * 1000)
    for p, entries in latest.items():
        for key, value in entries.items():
            states[p].restore(key, orjson.loads(value) if value is not None else None, wall)
    return states


def changelog_records(app: StreamApp, partition: int, changes: list[tuple[str, Any]]) -> list[Outgoing]:
    """Changelog entries of one partition's state, written to the same partition number."""
    return [
        Outgoing(
            app.topics.monitor_changelog,
            orjson.dumps(state) if state is not None else None,
            key.encode(),
            partition,
        )
        for key, state in changes
    ]


async def aggregate(app: StreamApp, rules: AlertRules | None = None) -> None:
    """WindowEvents in; closed windows and alerts out; state in the changelog."""
    s = app.settings
    rules = rules or AlertRules(**s.alert_rules)
    states: dict[int, PartitionState] = {}
    consumer = None
    # Every table's watermark waits for each sf.results partition (or its idleness timeout);
    # the topic's own count, as it may predate the partitions setting.
    sources = await partition_count(s, app.topics.results) or s.partitions

    async def on_revoked(revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            states.pop(tp.partition, None)

    consumer = await app.consumer(
        [app.topics.monitor_events], group=f"{s.topic_prefix}{GROUP}", on_revoked=on_revoked
    )
    # Its only wall-clock timer is a source partition idling out (2 s or more,
    # agents.windows), so it can tick half as often as fuse, whose deadlines are finer.
    async for batch in app.batches(consumer, s.batch_max * 4, s.batch_wait_ms * 10):
        t0 = time.perf_counter()
        # Restore here, not in on_partitions_assigned: aiokafka may already fetch (and hand
        # us) records of a new partition while that callback is still running.
        todo = partitions_to_restore(batch, app.assigned(consumer), states.keys())
        if todo:
            restored = await restore_partitions(app, rules, todo, sources)
            states.update(restored)
            log.info(
                "restored partition(s) %s: %d open windows in %.2fs",
                sorted(restored),
                sum(len(st.table.open) for st in restored.values()),
                time.perf_counter() - t0,
            )
        wall = int(time.time() * 1000)
        out: list[Outgoing] = []
        done = []
        for rec in batch:
            state = states.get(rec.partition)
            if state is None:
                continue  # revoked while the batch was in flight: its new owner reads it
            done.append(rec)
            ev = _decode(app, rec, WindowEvent, out)
            if ev is None:
                continue
            state.table.add(ev, rec.offset, wall)
            out += [
                Outgoing(app.topics.alerts, dumps(a), key_bytes(a.key))
                for a in state.engine.on_turn(ev, rec.offset, wall)
            ]
        changelog: list[Outgoing] = []
        for p, state in states.items():
            for c in state.table.close_due(wall):
                out.append(
                    Outgoing(
                        app.topics.windows, dumps(c.stats), key_bytes(f"{c.stats.dimension}:{c.stats.key}")
                    )
                )
                out += [
                    Outgoing(app.topics.alerts, dumps(a), key_bytes(a.key))
                    for a in state.engine.on_window(c.stats, wall)
                ]
            changelog += changelog_records(app, p, state.changes())
        offsets = batch_offsets(done)
        if app.exactly_once:
            await app.complete(consumer, out + changelog, offsets)
        else:
            # Outputs first: state that says "emitted" must never land without them.
            await app.publish(out)
            await app.complete(consumer, changelog, offsets)
        if batch or out:
            metrics.stage_batch("monitor", len(batch), time.perf_counter() - t0)
            metrics.published("monitor", out, app.topics)

"""fuse: join each Plan with its Predictions, fuse, post-process; one Result per message.

sf.plans + sf.predictions (co-partitioned by message id) -> sf.results
A record's offset is committed only once the result it feeds is published, so a crashed
worker's replacement rebuilds the pending joins from the topics (the input topics are the
join's changelog). The ids it finished are state too: a worker given a partition re-reads
them from that partition of sf.results (keyed by message id like the inputs, so the
partitions line up), back to just before the oldest record it will replay. A replayed
message that already has a result is dropped, in either processing guarantee.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import orjson
from aiokafka import TopicPartition
from pydantic import ValidationError

from agents.assist import AssistRules
from agents.inline import inline_ids
from agents.join import Done, Joiner, plan_failovers
from agents.results import build_result
from agents.validate import Where, dead_letter
from models.registry import Registry
from streams import metrics
from streams.app import Outgoing, StreamApp
from streams.codec import dumps, key_bytes, loads
from streams.offsets import OffsetTracker
from streams.records import DeadLetter, Plan, Prediction, Result, Subtask
from streams.restore import first_timestamps, offsets_since, partitions_to_restore, read_to_end, wait_stable
from streams.topics import Topics

log = logging.getLogger(__name__)
GROUP = "fuse"


def emit(done: list[Done], app: StreamApp, now_ms: int, labels_of: dict[str, list[str]]) -> list[Outgoing]:
    """Results for finished joins (duplicates produce nothing)."""
    out = []
    for d in done:
        for dup in d.conflicts:
            out.append(Outgoing(app.topics.dlq, dumps(duplicate_id_letter(dup)), key_bytes(dup.message_id)))
        if d.duplicate or d.plan is None:
            continue
        result = build_result(
            d.plan,
            d.predictions,
            now_ms,
            partial=d.partial,
            uncertain_below=app.settings.uncertain_below,
            labels_of=labels_of,
            assist_rules=AssistRules(handoff_below=app.settings.assist_handoff_below),
        )
        out.append(Outgoing(app.topics.results, dumps(result), key_bytes(result.id)))
        metrics.result(result.partial, result.latency_ms.get("recognize_to_fuse"))
    return out


def duplicate_id_letter(plan: Plan) -> DeadLetter:
    """A second input record that reused a message id: it gets a dead letter, not silence."""
    original = orjson.dumps(
        {"id": plan.message_id, "text": plan.text, "source": plan.source, "key": plan.key}
    )
    return dead_letter(
        original,
        "duplicate_id",
        f"message id {plan.message_id!r} was already used by another input record; this record "
        f"({plan.origin}) was not processed. Give every message a unique id, or omit it.",
        "fuse",
        Where(*_origin(plan.origin)),
        plan.message_id,
    )


def _origin(origin: str | None) -> tuple[str | None, int | None, int | None]:
    if not origin:
        return None, None, None
    topic, part, off = origin.rsplit("/", 2)
    return topic, int(part), int(off)


def failovers(
    joiner: Joiner,
    message_ids: set[str],
    alternatives: dict[str, list[str]],
    backbone_of: Mapping[str, str | None],
    topics: Topics,
    now_ms: int,
) -> list[Outgoing]:
    """Subtasks for other models where every model tried for a task failed."""
    out: list[Outgoing] = []
    for mid in message_ids:
        entry = joiner.pending.get(mid)
        if entry is None:
            continue
        for f in plan_failovers(entry, alternatives, now_ms):
            st = Subtask(
                message_id=f.message_id,
                task=f.task,
                model_id=f.model_id,
                text=f.text,
                deadline_ms=f.deadline_ms,
                created_ms=now_ms,
            )
            topic = topics.subtask_topic(f.model_id, backbone_of.get(f.model_id))
            out.append(Outgoing(topic, dumps(st), key_bytes(mid)))
            log.info("failover: %s %s -> %s", mid, f.task, f.model_id)
    return out


async def finished_ids(app: StreamApp, consumer, partitions: set[int]) -> dict[str, str | None]:
    """Ids (with their input origin) that already have a result, for messages whose records
    this consumer may replay from its committed offsets in ``partitions``."""
    s = app.settings
    t0 = time.perf_counter()
    starts: dict[TopicPartition, int] = {}
    for topic in (app.topics.plans, app.topics.predictions):
        for p in partitions:
            tp = TopicPartition(topic, p)
            committed = await consumer.committed(tp)
            starts[tp] = committed if committed is not None else 0
    oldest = await first_timestamps(s, starts)
    since: dict[int, int] = {}
    for tp, ts in oldest.items():
        since[tp.partition] = min(since.get(tp.partition, ts), ts)
    results = [TopicPartition(app.topics.results, p) for p in partitions]
    # The previous owner's last transaction may be committed but not yet readable.
    await wait_stable(s, results)
    read_from = await offsets_since(
        s, {TopicPartition(app.topics.results, p): ts - s.restore_slack_ms for p, ts in since.items()}
    )
    out: dict[str, str | None] = {}
    per_partition: dict[int, int] = dict.fromkeys(partitions, 0)
    for rec in await read_to_end(s, dict(read_from)):
        try:
            res = loads(rec.value, Result)
        except (ValidationError, ValueError):
            continue
        out[res.id] = res.origin
        per_partition[rec.partition] += 1
    # One line per restore, so that a repeated result can be traced to what was read.
    log.info(
        "restored %d finished ids of partitions %s in %.2fs: replay from %s; sf.results read "
        "from %s; ids per partition %s",
        len(out),
        sorted(partitions),
        time.perf_counter() - t0,
        {f"{tp.topic.rsplit('.', 1)[-1]}:{tp.partition}": off for tp, off in sorted(starts.items())},
        {tp.partition: off for tp, off in sorted(read_from.items())},
        per_partition,
    )
    return out


async def run(app: StreamApp, registry: Registry) -> None:
    """The fuse loop."""
    s = app.settings
    labels_of = {spec.id: spec.labels for spec in registry}
    # Failover order per task: best validation quality first (test models only in tests).
    # Inline models have no server to send a failover subtask to (agents.inline).
    inline = inline_ids(registry, s.inline_max_ms)
    alternatives: dict[str, list[str]] = {}
    for spec in sorted(registry, key=lambda sp: -sp.quality):
        if spec.id not in inline:
            alternatives.setdefault(spec.task, []).append(spec.id)
    backbone_of = registry.groups(coschedule=s.coschedule, share_base=s.share_base)
    errored: set[str] = set()
    joiner = Joiner(s.dedupe_capacity)
    tracker = OffsetTracker()
    restored: set[int] = set()  # partitions whose finished ids were re-read
    consumer = None

    async def on_revoked(revoked: set[TopicPartition]) -> None:
        if consumer is not None:
            await app.complete(consumer, [], tracker.to_commit())
        joiner.drop_partitions({tp.partition for tp in revoked})
        restored.difference_update(tp.partition for tp in revoked)
        for tp in revoked:
            tracker.forget(tp.topic, tp.partition)

    consumer = await app.consumer(
        [app.topics.plans, app.topics.predictions],
        group=f"{s.topic_prefix}{GROUP}",
        on_revoked=on_revoked,
        co_partitioned=True,
    )
    last_commit = 0.0
    async for batch in app.batches(consumer, s.batch_max * 4, s.batch_wait_ms * 5):
        t0 = time.perf_counter()
        # Re-read finished ids here, not in on_partitions_assigned: aiokafka may already hand
        # us records of a new partition while that callback is still running.
        new = partitions_to_restore(batch, app.assigned(consumer), restored)
        if new:
            joiner.remember_all(await finished_ids(app, consumer, new))
            restored.update(new)
        now_ms = int(time.time() * 1000)
        dlq: list[Outgoing] = []
        for rec in batch:
            where = (rec.topic, rec.partition, rec.offset)
            tracker.see(*where, hold=True)
            try:
                if rec.topic == app.topics.plans:
                    plan = loads(rec.value, Plan)
                    joiner.add_plan(plan, where, now_ms)
                    if joiner.has_errors(plan.message_id):
                        # A model's error can overtake its plan (another topic): fail it
                        # over now, or the join would complete with the error alone.
                        errored.add(plan.message_id)
                else:
                    pred = loads(rec.value, Prediction)
                    joiner.add_prediction(pred, where, now_ms)
                    if pred.error is not None:
                        errored.add(pred.message_id)
            except (ValidationError, ValueError) as exc:
                tracker.release(*where)
                dl = dead_letter(
                    rec.value, "bad_internal_record", f"undecodable: {exc}", "fuse", Where(*where)
                )
                dlq.append(Outgoing(app.topics.dlq, dumps(dl)))
        retries = failovers(joiner, errored, alternatives, backbone_of, app.topics, now_ms)
        errored.clear()
        done = joiner.collect(now_ms)
        out = dlq + retries + emit(done, app, now_ms, labels_of)
        for d in done:
            for where in d.offsets:
                tracker.release(*where)
        # exactly_once: outputs and offsets in one transaction per batch; at_least_once:
        # publish every batch, commit at most twice a second.
        commits = (
            tracker.to_commit()
            if app.exactly_once or time.monotonic() - last_commit > 0.5 or len(batch) >= s.batch_max
            else {}
        )
        if out or commits:
            if await app.complete(consumer, out, commits):
                tracker.mark_committed(commits)
            if commits:
                last_commit = time.monotonic()
        metrics.stage_batch("fuse", len(batch), time.perf_counter() - t0)
        metrics.published("fuse", dlq, app.topics)

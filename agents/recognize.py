"""recognize: validate, clean, identify tasks, divide into subtasks, allocate models.

sf.in -> sf.plans (Plan, keyed by message id) + sf.model.<id> (Subtasks) + sf.dlq
        + sf.predictions (the models computed inline, see agents.inline)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from agents.inline import inline_ids, predict_inline
from agents.loads import LoadView, follow_loads
from agents.planning import Planner, UnknownTask, check_tasks, derive_id
from agents.validate import Where, dead_letter, parse_input
from models.adapters import build_adapter
from models.base import Adapter
from models.registry import Registry
from models.scoring import Load
from streams import metrics
from streams.app import Outgoing, StreamApp
from streams.codec import dumps, key_bytes
from streams.records import DeadLetter, InputMessage, Subtask
from streams.topics import Topics

log = logging.getLogger(__name__)
GROUP = "recognize"


@dataclass(slots=True, frozen=True)
class Raw:
    """One input record as consumed."""

    value: bytes | None
    topic: str
    partition: int
    offset: int


def route(
    planner: Planner,
    topics: Topics,
    raws: Sequence[Raw],
    loads: dict[str, Load],
    now_ms: int,
    inline: Mapping[str, Adapter] | None = None,
    worker: str = GROUP,
) -> tuple[list[Outgoing], Counter[str]]:
    """Raw input records -> everything to publish for them (plans, subtasks, dead letters,
    and the predictions of the ``inline`` models, computed here: ``agents.inline``), and how
    many subtasks each model server was given."""
    inline = inline or {}
    max_record, max_text = planner.settings.max_record_bytes, planner.settings.max_text_bytes
    out: list[Outgoing] = []
    valid: list[tuple[InputMessage, str]] = []
    origins: list[str] = []
    for raw in raws:
        where = Where(raw.topic, raw.partition, raw.offset)
        parsed = parse_input(raw.value, max_record_bytes=max_record, max_text_bytes=max_text, where=where)
        if isinstance(parsed, InputMessage):
            try:
                check_tasks(parsed.tasks, planner.registry.tasks)
            except UnknownTask as exc:
                parsed = dead_letter(raw.value, "unknown_task", str(exc), "recognize", where, parsed.id)
        if isinstance(parsed, DeadLetter):
            out.append(Outgoing(topics.dlq, dumps(parsed), key_bytes(parsed.message_id)))
            continue
        valid.append((parsed, parsed.id or derive_id(raw.topic, raw.partition, raw.offset)))
        origins.append(f"{raw.topic}/{raw.partition}/{raw.offset}")
    s = planner.settings
    backbone_of = planner.registry.groups(coschedule=s.coschedule, share_base=s.share_base)
    used: Counter[str] = Counter()
    here: list[Subtask] = []
    for planned, origin in zip(planner.plan_batch(valid, loads, now_ms), origins, strict=True):
        planned.plan.origin = origin
        key = key_bytes(planned.plan.message_id)
        out.append(Outgoing(topics.plans, dumps(planned.plan), key))
        for st in planned.subtasks:
            if st.model_id in inline:
                here.append(st)
            else:
                out.append(
                    Outgoing(topics.subtask_topic(st.model_id, backbone_of[st.model_id]), dumps(st), key)
                )
                used[st.model_id] += 1
    out.extend(
        Outgoing(topics.predictions, dumps(p), key_bytes(p.message_id))
        for p in predict_inline(here, inline, worker)
    )
    return out, used


def build_planner(registry: Registry, settings) -> Planner:
    """The planner with the domain classifier loaded (if the catalog has one)."""
    domain_specs = registry.for_task("domain")
    domain_model = build_adapter(max(domain_specs, key=lambda s: s.quality)) if domain_specs else None
    return Planner(registry, settings, domain_model)


async def run(app: StreamApp, registry: Registry) -> None:
    """The recognize loop: batch in, plans and subtasks out, commit after produce; input
    paused while a model's backlog is over ``max_model_backlog`` (backpressure)."""
    planner = build_planner(registry, app.settings)
    inline = {m: build_adapter(registry.get(m)) for m in inline_ids(registry, app.settings.inline_max_ms)}
    if inline:
        log.info("models computed inline: %s", ", ".join(sorted(inline)))
    view = LoadView()
    consumer = await app.consumer([app.topics.input], group=f"{app.settings.topic_prefix}{GROUP}")
    # After the consumer: if that fails (broker down), the supervisor restarts this role
    # and no follower is left behind.
    follower = asyncio.create_task(follow_loads(app, view))
    s = app.settings
    try:
        async for batch in app.batches(consumer, s.batch_max, s.idle_poll_ms):
            if batch:
                t0 = time.perf_counter()
                raws = [Raw(r.value, r.topic, r.partition, r.offset) for r in batch]
                now_ms = int(time.time() * 1000)
                out, used = await asyncio.to_thread(
                    route, planner, app.topics, raws, view.snapshot(now_ms), now_ms, inline, app.worker
                )
                await app.complete_batch(consumer, out, batch)
                view.note_sent(used, now_ms)
                metrics.stage_batch("recognize", len(batch), time.perf_counter() - t0)
                metrics.published("recognize", out, app.topics)
            apply_backpressure(consumer, view, s.max_model_backlog)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follower


RESUME_SHARE = 0.75  # resume under this share of the limit, so the input does not flap


def should_pause(backlog: int, limit: int, paused: bool = False) -> bool:
    """Hold the input back while a model has ``limit`` or more subtasks waiting; once held,
    until the backlog is under ``RESUME_SHARE`` of the limit (0: never hold).

    Without it, at saturation the input would be planned far ahead of the models, and every
    planned message waits in fuse's memory for its predictions; paused, the messages wait
    in the input topic (durable, and read in order once the backlog drains).
    """
    if limit <= 0:
        return False
    return backlog >= (RESUME_SHARE * limit if paused else limit)


def apply_backpressure(consumer: AIOKafkaConsumer, view: LoadView, limit: int) -> None:
    """Pause or resume the input partitions by the worst model backlog (the consumer keeps
    polling while paused, so it stays in its group)."""
    model_id, backlog = view.backlog()
    paused = consumer.paused()
    if should_pause(backlog, limit, paused=bool(paused)):
        todo = consumer.assignment() - paused
        if todo:
            consumer.pause(*todo)
            metrics.backpressure(True)
            if not paused:
                log.info("input paused: %s has %d subtasks waiting (limit %d)", model_id, backlog, limit)
    elif paused:
        consumer.resume(*paused)
        metrics.backpressure(False)
        log.info("input resumed: largest model backlog %d (limit %d)", backlog, limit)

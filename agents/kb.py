"""The live knowledge base of an infer worker: follows ``sf.kb`` into its kb models.

``sf.kb`` is compacted and keyed by article id (value: the article's JSON; a null value or
``{"deleted": true}`` deletes it). Every infer worker that serves a ``kb`` model reads the
whole topic with a group-less consumer (every worker needs every article, as with the
load view in ``agents/loads.py``): first up to the end offsets it finds at start, applied
as one rebuild before the worker serves (a starting worker's index is the topic's state),
then each new record as it arrives, without a restart. After a connection failure it
reads the topic again from the beginning and rebuilds, so a tombstone compacted away in
the meantime cannot leave a deleted article behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from models.kb import BadArticle, Change, parse_record
from streams.app import StreamApp

log = logging.getLogger(__name__)
KB_TASK = "kb"
READY_TIMEOUT_S = 60.0  # serve anyway (bundled articles) if the topic cannot be read by then
_CATCH_UP_IDLE_POLLS = 6  # empty polls (of 0.5 s) that end a catch-up short of the end offsets


def kb_adapters(adapters: Mapping[str, Any]) -> list[Any]:
    """The adapters in this worker that hold a live knowledge base."""
    return [a for a in adapters.values() if getattr(a, "task", None) == KB_TASK and hasattr(a, "apply")]


def decode(records: Sequence[Any]) -> list[Change]:
    """Consumer records -> changes, in order; records that are not articles are skipped."""
    out = []
    for rec in records:
        try:
            out.append(parse_record(rec.key, rec.value))
        except BadArticle as exc:
            log.warning("kb: skipping %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, exc)
    return out


async def _apply(targets: Sequence[Any], changes: list[Change], reset: bool) -> None:
    for adapter in targets:  # embedding new articles takes the encoder: not on the event loop
        summary = await asyncio.to_thread(adapter.apply, changes, reset)
        if changes or reset:
            log.info(
                "kb %s: %d records applied (%s); %d articles from the %s",
                adapter.model_id,
                len(changes),
                ", ".join(f"{k} {v}" for k, v in summary.items() if k != "size"),
                summary.get("size", 0),
                adapter.source,
            )


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    for _ in range(100):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.2)
    raise RuntimeError(f"topic {topic!r} does not exist")


async def follow_kb(app: StreamApp, targets: Sequence[Any], ready: asyncio.Event) -> None:
    """Keep ``targets`` (kb adapters) equal to the topic until the app stops; sets
    ``ready`` once the topic as it was at start has been applied."""
    topic = app.topics.kb
    delay = 0.5
    while not app.stopping.is_set():
        consumer = AIOKafkaConsumer(
            **app.settings.client_kwargs(),
            group_id=None,
            client_id=f"streamfuse-{app.worker}-kb",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        try:
            await consumer.start()
            parts = await _partitions(consumer, topic)
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            end = await consumer.end_offsets(parts)
            started = time.monotonic()
            changes: list[Change] = []
            idle = 0
            while idle < _CATCH_UP_IDLE_POLLS:
                positions = {tp: await consumer.position(tp) for tp in parts}
                if all(positions[tp] >= end[tp] for tp in parts):
                    break
                got = await consumer.getmany(timeout_ms=500, max_records=1000)
                batch = [r for recs in got.values() for r in recs]
                idle = 0 if batch else idle + 1
                changes += decode(batch)
            await _apply(targets, changes, reset=True)
            log.info("kb: read %s to its end in %.1f s", topic, time.monotonic() - started)
            ready.set()
            delay = 0.5
            while not app.stopping.is_set():
                got = await consumer.getmany(timeout_ms=500, max_records=500)
                batch = [r for recs in got.values() for r in recs]
                if batch:
                    await _apply(targets, decode(batch), reset=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("kb follower: %s; reading %s again in %.1f s", exc, topic, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()


async def start_following(app: StreamApp, adapters: Mapping[str, Any]) -> asyncio.Task[None] | None:
    """Start the follower when this worker serves a kb model, and wait (bounded) until the
    topic's current state is in the index; returns the follower task (None: no kb model)."""
    targets = kb_adapters(adapters)
    if not targets:
        return None
    ready = asyncio.Event()
    task = asyncio.create_task(follow_kb(app, targets, ready), name="kb-follower")
    try:
        await asyncio.wait_for(ready.wait(), READY_TIMEOUT_S)
    except TimeoutError:
        log.warning(
            "kb: %s not read within %.0f s; serving what the index has", app.topics.kb, READY_TIMEOUT_S
        )
    return task

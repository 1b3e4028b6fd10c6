"""The knowledge-base topic (``sf.kb``) from outside the pipeline: publish and delete
articles, read its current state, seed it.

The topic is compacted and keyed by article id; a record's value is the article's JSON and
a null value (a tombstone) deletes the article. What an article must contain is checked by
its readers (``models.kb``); here records are bytes with a key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.admin import ensure_topics
from streams.settings import Settings
from streams.topics import get_topics


def jsonl_records(path: Path) -> list[tuple[str, bytes]]:
    """(article id, line) for every non-blank line of a JSON Lines file of articles."""
    out = []
    for n, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not JSON: {exc}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
            raise ValueError(f"{path}:{n}: an article must be a JSON object with a string id")
        out.append((obj["id"], orjson.dumps(obj)))
    return out


async def publish(settings: Settings, records: Iterable[tuple[str, bytes | None]]) -> int:
    """Send (article id, value) records to the knowledge-base topic (None = delete) and
    wait for every acknowledgement; creates the topic (compacted) when it is missing."""
    topic = get_topics(settings).kb
    await ensure_topics(settings, [topic])
    producer = AIOKafkaProducer(**settings.client_kwargs(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=aid.encode("utf-8"), value=value) for aid, value in records]
        if futures:
            await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


async def read_state(settings: Settings, timeout: float = 30.0) -> dict[str, Any]:
    """The topic's current articles by id (latest record per key, deletions applied)."""
    topic = get_topics(settings).kb
    consumer = AIOKafkaConsumer(
        **settings.client_kwargs(), group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    state: dict[str, Any] = {}
    try:
        parts = None
        for _ in range(50):
            found = consumer.partitions_for_topic(topic)
            if found:
                parts = [TopicPartition(topic, p) for p in sorted(found)]
                break
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        if not parts:
            return state
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            positions = [await consumer.position(tp) for tp in parts]
            if all(pos >= end[tp] for pos, tp in zip(positions, parts, strict=True)):
                break
            got = await consumer.getmany(timeout_ms=200, max_records=1000)
            for recs in got.values():
                for rec in recs:
                    key = rec.key.decode("utf-8", "replace") if rec.key else None
                    value = orjson.loads(rec.value) if rec.value else None
                    deleted = value is None or (isinstance(value, dict) and value.get("deleted") is True)
                    if key is None and isinstance(value, dict):
                        key = value.get("id")
                    if key is None:
                        continue
                    if deleted:
                        state.pop(key, None)
                    else:
                        state[key] = value
        return state
    finally:
        await consumer.stop()


async def seed(settings: Settings, path: Path) -> int:
    """Publish the articles of ``path`` when the topic holds no article; returns how many
    were published (0 when it already had articles)."""
    await ensure_topics(settings, [get_topics(settings).kb])
    if await read_state(settings):
        return 0
    return await publish(settings, jsonl_records(path))

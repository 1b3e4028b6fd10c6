"""Producing files to the input topic and reading output topics (used by the CLI)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.settings import Settings


def record_key(line: bytes) -> bytes | None:
    """The partition key of a raw input line: its ``key`` field, else its ``id``.

    Lines are sent as they are, valid or not: validation is the pipeline's job, and
    invalid lines must reach the dead-letter topic, not vanish in the producer.
    """
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict):
        for field in ("key", "id"):
            value = data.get(field)
            if isinstance(value, str) and value:
                return value.encode("utf-8")
    return None


async def produce_lines(
    settings: Settings,
    topic: str,
    lines: Iterable[bytes],
    rate: float | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send each non-empty line as one record; ``rate`` caps records per second."""
    producer = AIOKafkaProducer(
        **settings.client_kwargs(),
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.linger_ms,
        max_batch_size=256 * 1024,
        max_request_size=16 * 1024 * 1024,
    )
    await producer.start()
    sent = 0
    futures = []
    start = time.monotonic()
    try:
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            if rate:
                due = start + sent / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            futures.append(await producer.send(topic, value=line, key=record_key(line)))
            sent += 1
            if on_sent is not None:
                on_sent(1)
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        if futures:
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    limit: int | None = None,
    timeout: float | None = None,
    from_beginning: bool = True,
    idle_timeout: float | None = None,
    ready: asyncio.Event | None = None,
    lookback: int = 0,
) -> AsyncIterator[dict[str, Any]]:
    """Yield decoded records of ``topic`` (no consumer group: a read-only observer).

    Starts at the beginning, or at the end as it is when the reader starts (``ready`` is
    set once that position is fixed, so a caller can produce afterwards without a race);
    ``lookback`` moves that end back by up to N records per partition (recent history).
    Stops after ``limit`` records, after ``timeout`` seconds in all, or after
    ``idle_timeout`` seconds without a new record.
    """
    consumer = AIOKafkaConsumer(
        **settings.client_kwargs(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    count = 0
    start = last = time.monotonic()
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)  # resolve now, not at the first fetch
        if lookback > 0 and not from_beginning:
            first = await consumer.beginning_offsets(partitions)
            for tp in partitions:
                consumer.seek(tp, max(first[tp], await consumer.position(tp) - lookback))
        if ready is not None:
            ready.set()
        while True:
            now = time.monotonic()
            if timeout is not None and now - start >= timeout:
                return
            if idle_timeout is not None and now - last >= idle_timeout:
                return
            got = await consumer.getmany(timeout_ms=200, max_records=1000)
            for recs in got.values():
                for rec in recs:
                    last = time.monotonic()
                    yield {
                        "topic": rec.topic,
                        "partition": rec.partition,
                        "offset": rec.offset,
                        "key": rec.key.decode("utf-8", "replace") if rec.key else None,
                        "timestamp": rec.timestamp,
                        "value": _decode(rec.value),
                    }
                    count += 1
                    if limit is not None and count >= limit:
                        return
    finally:
        if ready is not None:
            ready.set()
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(
        f"topic {topic!r} does not exist on the broker; start a worker or `streamfuse up` "
        "to create the topics"
    )


def _decode(value: bytes | None) -> Any:
    if not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return {"_raw": value.decode("utf-8", "replace")}

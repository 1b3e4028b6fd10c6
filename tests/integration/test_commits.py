"""Coalesced at-least-once commits on the real broker: held back between commits, never
ahead of what the stage acknowledged, and all committed when the worker stops."""

import asyncio

from aiokafka import TopicPartition

from streams.admin import _admin, ensure_topics
from streams.app import Outgoing, StreamApp

RECORDS = 10


async def _committed(settings, group: str, tp: TopicPartition) -> int | None:
    async with _admin(settings) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    meta = offsets.get(tp)
    return None if meta is None else meta.offset


async def _scenario(env) -> tuple[int | None, int | None]:
    settings = env.settings.model_copy(update={"commit_interval_ms": 60_000})
    topic, group = f"{env.prefix}commits", f"{env.prefix}commits-group"
    tp = TopicPartition(topic, 0)
    await ensure_topics(settings, [topic])
    app = StreamApp(settings, worker="commits-test")
    await app.start()
    await app.publish([Outgoing(topic, f"r{i}".encode(), partition=0) for i in range(RECORDS)])
    consumer = await app.consumer([topic], group=group)
    seen = 0
    async for batch in app.batches(consumer, 100, 200):
        for rec in batch:  # one commit per record: the first goes out, the rest are held
            assert await app.commit_batch(consumer, [rec])
        seen += len(batch)
        if seen >= RECORDS:
            break
    while_running = await _committed(settings, group, tp)
    await app.stop()
    return while_running, await _committed(settings, group, tp)


def test_commits_are_held_to_the_interval_and_flushed_when_the_worker_stops(env) -> None:
    while_running, after_stop = asyncio.run(_scenario(env))
    assert while_running is not None and 1 <= while_running < RECORDS
    assert after_stop == RECORDS

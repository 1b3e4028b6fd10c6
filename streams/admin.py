"""Topic administration: every topic is created up front with its partition count."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.settings import Settings
from streams.topics import Topics, get_topics

log = logging.getLogger(__name__)
# The knowledge base is a table, not a stream: compacted (the latest record per article id
# is kept, a null value deletes) and in one partition (one total order of changes; every
# infer worker reads all of it, so there is nothing to spread over partitions).
KB_TOPIC_CONFIG = {"cleanup.policy": "compact"}
KB_PARTITIONS = 1
# A table's changelog keeps the latest state per key. Short segments let the cleaner drop
# closed windows (tombstones) soon, so restoring a partition reads little.
CHANGELOG_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": "60000",
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": "60000",
}


def all_topics(topics: Topics, model_ids: Iterable[str], backbones: Iterable[str] = ()) -> list[str]:
    """The core topics plus one subtask topic per model and per shared backbone."""
    return (
        topics.core()
        + [topics.model(m) for m in sorted(set(model_ids))]
        + [topics.backbone(b) for b in sorted(set(backbones))]
    )


def model_topics(topics: Topics, specs: Iterable[object]) -> list[str]:
    """Every topic for a set of catalog entries (anything with ``id`` and ``backbone``)."""
    specs = list(specs)
    return all_topics(
        topics,
        [s.id for s in specs],  # type: ignore[attr-defined]
        [s.backbone for s in specs if s.backbone],  # type: ignore[attr-defined]
    )


@contextlib.asynccontextmanager
async def _admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit."""
    admin = AIOKafkaAdminClient(**settings.client_kwargs(), request_timeout_ms=30_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def ensure_topics(settings: Settings, names: Iterable[str]) -> list[str]:
    """Create the missing topics; returns the names that were created."""
    async with _admin(settings) as admin:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if not missing:
            return []
        # Another worker may win the race to create them: that is fine.
        topics = get_topics(settings)
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([_new_topic(settings, topics, n) for n in missing])
        await _wait_visible(admin, missing)
        described = await admin.describe_topics(missing)
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    await _wait_leaders(settings, partitions)
    log.info("created topics: %s", ", ".join(missing))
    return missing


async def _wait_leaders(settings: Settings, partitions: list[TopicPartition], timeout: float = 30) -> None:
    """Until the broker answers for every partition: a new topic is listed in the metadata a
    moment before its partitions have a leader, and a consumer that starts in that moment
    logs "NotLeaderForPartition" errors while it retries (aiokafka logs them at ERROR).
    The offsets lookup here retries the same error quietly."""
    if not partitions:
        return
    consumer = AIOKafkaConsumer(
        **settings.client_kwargs(), group_id=None, request_timeout_ms=int(timeout * 1000)
    )
    await consumer.start()
    try:
        await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


def _new_topic(settings: Settings, topics: Topics, name: str) -> NewTopic:
    if name == topics.kb:
        return NewTopic(name, KB_PARTITIONS, settings.replication, topic_configs=KB_TOPIC_CONFIG)
    if name == topics.monitor_changelog:
        return NewTopic(name, settings.partitions, settings.replication, topic_configs=CHANGELOG_TOPIC_CONFIG)
    return NewTopic(name, settings.partitions, settings.replication)


async def delete_prefixed_topics(settings: Settings, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix``; returns the names deleted.

    For throwaway pipelines (the bench's): every partition adds to an idle broker's CPU,
    so topics left behind tax each later run on that broker."""
    if not prefix:
        raise ValueError("an empty prefix would delete every topic")
    async with _admin(settings) as admin:
        names = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if names:
            await admin.delete_topics(names)
            await _wait_gone(admin, names)
    return names


async def broker_partitions(settings: Settings) -> int:
    """Partitions of every topic on the cluster, internal ones included."""
    async with _admin(settings) as admin:
        return sum(len(t["partitions"]) for t in await admin.describe_topics(None) if t["partitions"])


async def partition_count(settings: Settings, topic: str) -> int | None:
    """The number of partitions ``topic`` has on the broker (None if it does not exist)."""
    async with _admin(settings) as admin:
        # every topic (None): naming one in a metadata request may auto-create it
        for t in await admin.describe_topics(None):
            if t["topic"] == topic and t["error_code"] == 0 and t["partitions"]:
                return len(t["partitions"])
        return None


async def group_lags(settings: Settings, prefix: str) -> dict[str, int]:
    """Per consumer group whose id starts with ``prefix``: records between its committed
    offsets and the ends of those partitions (where a stalled pipeline stopped)."""
    lags: dict[str, int] = {}
    async with _admin(settings) as admin:
        groups = [g[0] for g in await admin.list_consumer_groups() if g[0].startswith(prefix)]
        committed = {g: await admin.list_consumer_group_offsets(g) for g in sorted(groups)}
    consumer = AIOKafkaConsumer(**settings.client_kwargs(), group_id=None)
    await consumer.start()
    try:
        for group, offsets in committed.items():
            ends = await consumer.end_offsets(list(offsets)) if offsets else {}
            lags[group] = sum(max(0, ends[tp] - meta.offset) for tp, meta in offsets.items())
    finally:
        await consumer.stop()
    return lags


async def _wait_visible(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if set(names) <= set(await admin.list_topics()):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"topics not visible after {timeout}s: {names}")


async def _wait_gone(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 60) -> None:
    """Until no deleted topic is listed any more (deletion finishes after the reply)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if not set(names) & set(await admin.list_topics()):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"topics still listed {timeout}s after their deletion: {names[:5]}")

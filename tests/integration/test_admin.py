"""Topic housekeeping on the real broker: a throwaway pipeline's topics go when it ends."""

import asyncio

import pytest

from streams.admin import _admin, broker_partitions, delete_prefixed_topics, ensure_topics
from streams.topics import get_topics


async def _names(settings) -> set[str]:
    async with _admin(settings) as admin:
        return set(await admin.list_topics())


def test_deleting_a_prefix_removes_its_topics_and_no_others(env) -> None:
    core = set(get_topics(env.settings).core())
    neighbour = env.prefix.rstrip(".") + "x.results"  # same first characters, other prefix
    asyncio.run(ensure_topics(env.settings, [*core, neighbour]))
    before = asyncio.run(broker_partitions(env.settings))

    deleted = asyncio.run(delete_prefixed_topics(env.settings, env.prefix))

    assert set(deleted) == core
    names = asyncio.run(_names(env.settings))
    assert neighbour in names
    assert not core & names
    assert asyncio.run(broker_partitions(env.settings)) <= before - len(core)
    assert asyncio.run(delete_prefixed_topics(env.settings, neighbour)) == [neighbour]


def test_an_empty_prefix_is_refused(env) -> None:
    with pytest.raises(ValueError, match="every topic"):
        asyncio.run(delete_prefixed_topics(env.settings, ""))

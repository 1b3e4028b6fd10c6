"""The window table survives its worker: stopped cleanly (at-least-once) or SIGKILLed
(exactly-once), a restarted monitor resumes its open windows from the changelog, and every
window is published once with every result counted once."""

from __future__ import annotations

import asyncio
import signal

import pytest
from aiokafka import AIOKafkaProducer

from streams.admin import ensure_topics
from streams.records import Result, TaskResult
from streams.topics import get_topics
from tests.integration.conftest import Env, wait_for

pytestmark = pytest.mark.integration
T0 = 1_767_225_600_000  # a multiple of the window size
N = 3000
STEP_MS = 10  # results 10 ms apart in event time: 30 s in all
WINDOW_ENV = {
    "STREAMFUSE_WINDOW_SIZE_S": "10",
    "STREAMFUSE_WINDOW_HOP_S": "5",
    "STREAMFUSE_WINDOW_GRACE_S": "2",
}


def _result(i: int, ts: int) -> bytes:
    label = ("positive", "neutral", "negative")[i % 3]
    r = Result(
        id=f"r-{i}",
        text="synthetic",
        source="wire",
        ts=ts,
        lang="en",
        outputs={"fin_sentiment": TaskResult(label=label, score=0.9)},
    )
    return r.model_dump_json().encode()


async def _produce(env: Env, items: list[tuple[int, int]]) -> None:
    topics = get_topics(env.settings)
    producer = AIOKafkaProducer(**env.settings.client_kwargs(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        # one key: a single sf.results partition, so the feed is in event-time order
        futs = [await producer.send(topics.results, _result(i, ts), key=b"feed") for i, ts in items]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


def _windows(env: Env) -> list[dict]:
    return [
        w
        for w in env.tail_json("windows", timeout=30, idle=2)
        if w["key"] == "wire" and w["start_ms"] < T0 + 30_000
    ]


def _expected() -> dict[tuple[str, int], int]:
    counts: dict[tuple[str, int], int] = {}
    for i in range(N):
        ts = T0 + i * STEP_MS
        counts[("tumbling", ts - ts % 10_000)] = counts.get(("tumbling", ts - ts % 10_000), 0) + 1
        for start in range(ts - ts % 5_000 - 5_000, ts + 1, 5_000):
            if start <= ts < start + 10_000:
                counts[("hopping", start)] = counts.get(("hopping", start), 0) + 1
    return counts


def _run(env: Env, start_worker, guarantee: str, stop_signal: int) -> None:
    extra = {**WINDOW_ENV, "STREAMFUSE_PROCESSING_GUARANTEE": guarantee}
    asyncio.run(ensure_topics(env.settings, get_topics(env.settings).core()))
    first = start_worker("monitor", extra, name="mon-1")
    half = N // 2
    asyncio.run(_produce(env, [(i, T0 + i * STEP_MS) for i in range(half)]))
    # the first 10 s window closes once event time passes 12 s; later ones are still open
    wait_for(lambda: any(w["window"] == "tumbling" for w in _windows(env)), 90, "the first window")
    first.stop(stop_signal)
    start_worker("monitor", extra, name="mon-1")
    flush = T0 + 100_000  # moves event time past every window of the feed
    asyncio.run(_produce(env, [(i, T0 + i * STEP_MS) for i in range(half, N)] + [(N, flush)]))
    expected = _expected()
    wait_for(lambda: len(_windows(env)) >= len(expected), 120, "every window of the feed")
    got = _windows(env)
    published = [(w["window"], w["start_ms"]) for w in got]
    assert sorted(published) == sorted(expected), "each window published exactly once"
    assert {(w["window"], w["start_ms"]): w["count"] for w in got} == expected, "every result counted once"
    tumbling = [w for w in got if w["window"] == "tumbling"]
    assert sum(w["count"] for w in tumbling) == N
    assert sum(w["sentiment_dist"].get("negative", 0) for w in tumbling) == N // 3


def test_windows_resume_after_a_clean_stop(env: Env, start_worker):
    _run(env, start_worker, "at_least_once", signal.SIGTERM)


def test_windows_are_exact_through_a_kill_with_exactly_once(env: Env, start_worker):
    _run(env, start_worker, "exactly_once", signal.SIGKILL)

"""The whole pipeline on the real broker: produce N, read back exactly N outcomes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.io import read_topic
from streams.topics import Topics
from tests.integration.conftest import REPO, Env

pytestmark = pytest.mark.integration
DEMO = REPO / "data" / "demo"


def _lines(name: str) -> list[bytes]:
    return [ln for ln in (DEMO / name).read_bytes().splitlines() if ln.strip()]


def test_every_message_ends_as_one_result_or_one_dead_letter(env: Env, start_worker, tmp_path: Path):
    good = _lines("financial_news.jsonl")[:60] + _lines("support_chat.jsonl")[:60]
    bad = [
        *_lines("bad_inputs.jsonl"),
        b"\xff\xfe not utf-8",
        b'{"text": "' + b"x" * 70_000 + b'"}',
    ]
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(good + bad) + b"\n")
    start_worker("recognize,infer,fuse,monitor")

    env.cli("produce", str(feed))
    results = env.tail_json("results", limit=len(good), timeout=150)
    dead = env.tail_json("dlq", limit=len(bad), timeout=30)

    ids = [r["id"] for r in results]
    assert len(ids) == len(good)
    assert set(ids) == {orjson.loads(line)["id"] for line in good}
    assert len(dead) == len(bad)
    reasons = {d["reason"] for d in dead}
    assert {"not_json", "not_utf8", "invalid_field", "not_object", "too_large"} <= reasons
    for r in results:
        assert r["outputs"], f"no task output for {r['id']}"
        assert r["partial"] is False
    # no extra results arrive later (exactly one per id)
    assert len(env.tail_json("results", timeout=5)) == len(good)


def test_a_plain_kafka_client_gets_a_fused_result_from_two_models(env: Env, start_worker):
    """Any Kafka client can publish; the result carries a fusion of two models' outputs.

    fin_sentiment alone runs lora-fin (its ensemble did not pay on validation), so the
    message asks for a vote, as a producer may (``meta.fusion``)."""
    start_worker("recognize,infer,fuse,monitor")
    message = {
        "id": "plain-client-1",
        "text": "Shares of Tesla plunged 12% after the company missed delivery estimates badly",
        "source": "newswire",
        "key": "TSLA",
        "meta": {"fusion": "weighted_vote"},
    }

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=env.settings.bootstrap_servers())
        await producer.start()
        try:
            await producer.send_and_wait(f"{env.prefix}in", orjson.dumps(message), key=b"TSLA")
        finally:
            await producer.stop()

    _wait_topic(env)
    asyncio.run(send())
    (result,) = env.tail_json("results", limit=1, timeout=120)
    assert result["id"] == "plain-client-1"
    task = result["outputs"]["fin_sentiment"]
    assert len(task["models"]) >= 2, f"fin_sentiment was not fused from two models: {task}"
    assert task["strategy"] == "weighted_vote"
    assert all(m["label"] for m in task["models"])
    assert task["label"] in task["probs"]


def _wait_topic(env: Env) -> None:
    from tests.integration.conftest import wait_for

    async def exists() -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=env.settings.bootstrap_servers())
        await admin.start()
        try:
            return f"{env.prefix}results" in await admin.list_topics()
        finally:
            await admin.close()

    wait_for(lambda: asyncio.run(exists()), 60, "the worker to create the topics")


def test_with_share_base_the_lora_models_run_in_the_backbones_pass(env: Env, start_worker, tmp_path: Path):
    """``share_base`` on: the LoRA models' subtasks go to the backbone's topic, and every
    model of the group answers through the shared pass, as each does alone."""
    good = _lines("financial_news.jsonl")[:8] + _lines("support_chat.jsonl")[:8]
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(good) + b"\n")
    start_worker("recognize,infer,fuse,monitor", {"STREAMFUSE_SHARE_BASE": "1"})

    env.cli("produce", str(feed))
    results = env.tail_json("results", limit=len(good), timeout=150)
    assert len(results) == len(good)
    answered: set[str] = set()
    for r in results:
        assert r["partial"] is False
        for task in r["outputs"].values():
            for vote in task["models"]:
                assert not vote.get("error"), vote
                answered.add(vote["model_id"])
    assert {"lora-fin", "lora-conll", "lora-sst2", "minilm-banking77"} <= answered
    topics = Topics(env.prefix)
    routed = {rec["value"]["model_id"] for rec in asyncio.run(_read(env, topics.backbone("minilm")))}
    assert {"lora-fin", "lora-conll", "lora-sst2"} <= routed
    assert asyncio.run(_read(env, topics.model("lora-fin"))) == []


async def _read(env: Env, topic: str) -> list[dict]:
    return [rec async for rec in read_topic(env.settings, topic, timeout=10, idle_timeout=3)]

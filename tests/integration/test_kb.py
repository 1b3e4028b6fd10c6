"""The live knowledge base on the real broker: an article published to sf.kb reaches a
running infer worker's index (no restart) and the support assist; a deletion removes it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import REPO, Env

pytestmark = pytest.mark.integration

# An invented product no bundled article (and no Banking77 intent) covers.
ORBIT = {
    "id": "kb-9001",
    "title": "Northwind Orbit card: spending Stardust points on the moon shuttle",
    "body": "Every payment with the Northwind Orbit card earns Stardust points, shown under Cards > "
    "Orbit > Stardust. Stardust points can be swapped for a seat on the Orbit moon shuttle: pick a "
    "launch window, choose how many Stardust points to spend and confirm. A seat costs 40,000 points "
    "and booking closes 14 days before launch. Points from the Orbit card never expire while the card "
    "is open, and a cancelled shuttle booking returns every point to your balance.",
    "intents": [],
    "tags": ["orbit", "rewards", "how-to"],
}
QUESTION = "Can I use my Stardust points to book a seat on the Orbit moon shuttle?"


def _ask(env: Env, tmp_path: Path, mid: str, timeout: float = 120) -> dict:
    """Send the question as a support-chat turn and return its Result."""
    feed = tmp_path / f"{mid}.jsonl"
    feed.write_bytes(
        orjson.dumps({"id": mid, "text": QUESTION, "source": "support-chat", "key": "conv-orbit"}) + b"\n"
    )
    env.cli("produce", str(feed))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in env.tail_json("results", timeout=10, idle=3):
            if r["id"] == mid:
                return r
    raise AssertionError(f"no result for {mid} within {timeout}s")


def _ids(result: dict) -> list[str]:
    return [a["id"] for a in result["assist"]["articles"]]


def _until(env: Env, tmp_path: Path, tag: str, wanted, timeout: float = 90) -> dict:
    """Ask again until a result satisfies ``wanted`` (the follower applies records within
    about a second; a question already queued may have been answered just before)."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        result = _ask(env, tmp_path, f"{tag}-{n}")
        if wanted(result):
            return result
        time.sleep(1)
    raise AssertionError(f"{tag}: no result as wanted within {timeout}s; last: {result['assist']}")


def _topic_config(env: Env, topic: str) -> dict[str, str]:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async def describe() -> dict[str, str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=env.settings.bootstrap_servers())
        await admin.start()
        try:
            (resp,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            (resource,) = resp.resources
            return {entry[0]: entry[1] for entry in resource[4]}
        finally:
            await admin.close()

    return asyncio.run(describe())


def test_a_published_article_reaches_the_assist_without_a_restart(env: Env, start_worker, tmp_path: Path):
    seeded = orjson.loads(
        env.cli("kb", "publish", str(REPO / "data" / "kb" / "articles.jsonl"), "--json").stdout
    )
    assert seeded["published"] == 172
    assert _topic_config(env, f"{env.prefix}kb")["cleanup.policy"] == "compact"
    start_worker("recognize,infer,fuse")

    before = _ask(env, tmp_path, "orbit-0")
    assist = before["assist"]
    assert assist is not None, before
    assert assist["handoff"] and "uncertain_intent" in assist["handoff_reasons"], assist
    assert assist["articles"] and "kb-9001" not in _ids(before)
    # the worker built its index from the topic when it started
    kb_preds = [
        p
        for p in env.tail_json("predictions", timeout=10, idle=3)
        if p["message_id"] == "orbit-0" and p["task"] == "kb"
    ]
    assert (
        kb_preds and kb_preds[0]["extra"]["kb_source"] == "topic" and kb_preds[0]["extra"]["kb_size"] == 172
    )

    article = tmp_path / "orbit.jsonl"
    article.write_bytes(orjson.dumps(ORBIT) + b"\n")
    env.cli("kb", "publish", str(article))
    added = _until(env, tmp_path, "orbit-add", lambda r: "kb-9001" in _ids(r))
    assert _ids(added)[0] == "kb-9001", added["assist"]
    assert added["outputs"]["kb"]["label"] == "kb-9001"
    assert added["assist"]["articles"][0]["title"] == ORBIT["title"]

    env.cli("kb", "delete", "kb-9001")
    gone = _until(env, tmp_path, "orbit-del", lambda r: "kb-9001" not in _ids(r))
    assert gone["assist"]["articles"]
    listed = orjson.loads(env.cli("kb", "list", "--json").stdout)
    assert len(listed) == 172 and "kb-9001" not in {a["id"] for a in listed}

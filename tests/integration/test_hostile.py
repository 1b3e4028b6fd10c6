"""Hostile input through the live pipeline: each item ends in sf.results or in sf.dlq with
a precise reason; no worker crashes; nothing is lost."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import Env

pytestmark = pytest.mark.integration


def _ok(mid: str, text: str, **extra) -> tuple[bytes, str]:
    return orjson.dumps({"id": mid, "text": text, "source": "social", **extra}), "result"


CORPUS: list[tuple[bytes, str]] = [
    (b"\xc3\x28 invalid utf-8 \xff", "not_utf8"),
    (b'{"text": ""}', "invalid_field"),
    (b'{"text": " \\t\\n "}', "invalid_field"),
    (b'{"text": "a\\u0000b"}', "invalid_field"),
    (b'{"text": "\\u200b\\u200b"}', "invalid_field"),
    (b'{"text": "' + b"x" * (10 * 1024 * 1024) + b'"}', "too_large"),
    (b"[" * 5000 + b"]" * 5000, "not_json"),
    (b'{"text": NaN}', "not_json"),
    (b'{"text": "x", "ts": Infinity}', "not_json"),
    (b'{"text": "x", "ts": 123456789012345678901234567890}', "invalid_field"),  # parsed as a float
    (b'{"text": ["not", "a", "string"]}', "invalid_field"),
    (b'{"text": "ok", "source": 7}', "invalid_field"),
    (b'{"text": "ok", "surprise": true}', "invalid_field"),
    (b'{"text": "ok", "tasks": ["summarise"]}', "unknown_task"),
    (b"null", "not_object"),
    (b"", "empty"),
    _ok("emoji-1", "Stock to the moon 🚀🚀🚀 $TSLA 💎🙌"),
    _ok("rtl-1", "الأسهم ارتفعت اليوم بعد إعلان الأرباح"),
    _ok("zalgo-1", "H̷̢̛̩̪̳͖̆̈́̀e̶̢̧̛̱̩̣̓͌ ̸̡̛̖̻̈́̃c̷̢̛̣͓̈́͝o̶̧̟̟̓m̸̨̛̰̈́e̶̛̟̓s̸̨̛̹̓ my card is blocked"),
    _ok("lang-1", "Meine Karte wurde gestohlen, bitte sperren Sie sie sofort"),
    _ok("lang-2", "私のカードが盗まれました。すぐに止めてください"),
    _ok("dup-1", "first message with this id"),
]
DUPLICATE = orjson.dumps({"id": "dup-1", "text": "another message reusing the id", "source": "social"})


def test_hostile_corpus_ends_in_results_or_dead_letters(env: Env, start_worker, tmp_path: Path):
    worker = start_worker("recognize,infer,fuse,monitor")
    feed = tmp_path / "hostile.jsonl"
    # The empty record cannot be a line of a file: it is sent as an empty line's neighbour
    # by the producer below instead.
    lines = [raw for raw, _ in CORPUS if raw] + [DUPLICATE]
    feed.write_bytes(b"\n".join(lines) + b"\n")
    env.cli("produce", str(feed))
    _send_empty_record(env)

    expected_results = {orjson.loads(raw)["id"] for raw, want in CORPUS if want == "result"}
    expected_dlq = Counter(want for _, want in CORPUS if want != "result") + Counter({"duplicate_id": 1})
    results = env.tail_json("results", limit=len(expected_results), timeout=150)
    dead = env.tail_json("dlq", limit=sum(expected_dlq.values()), timeout=60)

    assert {r["id"] for r in results} == expected_results
    assert Counter(d["reason"] for d in dead) == expected_dlq
    for d in dead:
        assert d["detail"] and d["original_size"] >= 0
    big = next(d for d in dead if d["reason"] == "too_large")
    assert big["original_size"] > 10_000_000 and len(big["original"]) <= 65_536
    by_id = {r["id"]: r for r in results}
    assert by_id["lang-1"]["lang"] == "de" and by_id["lang-1"]["unserved"]
    assert worker.proc.poll() is None, "the worker died"


def _send_empty_record(env: Env) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=env.settings.bootstrap_servers())
        await producer.start()
        try:
            await producer.send_and_wait(f"{env.prefix}in", b"")
        finally:
            await producer.stop()

    asyncio.run(send())

"""Alerts through the live pipeline: a negative burst on one ticker, and a calm stream."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import Env

pytestmark = pytest.mark.integration
T0 = 1_767_225_600_000
WINDOW_MS = 10_000
CALM = [
    "{name}'s operating profit rose to EUR 5.2 mn from EUR 3.1 mn in the corresponding period",
    "{name} reported net sales growth of 12 % and raised its outlook for the full year",
]
BAD = [
    "{name}'s net sales decreased by 30 % and the company swung to an operating loss",
    "{name} shares plunged after the company cut its outlook and warned of heavy losses",
    "{name} reported a sharp fall in profit and announced layoffs as orders collapsed",
]
TICKERS = {"BA": "Boeing", "AAPL": "Apple", "MSFT": "Microsoft"}
# The feed compresses event time (50 s of it in about 10 s of wall time), so a results
# partition that falls a second or two behind under load is far behind in event time. The
# grace (which is also the idleness timeout) is one window, so that no record is dropped as
# late while the feed runs; the windows then close when the feed has been quiet that long.
WINDOW_ENV = {
    "STREAMFUSE_WINDOW_SIZE_S": "10",
    "STREAMFUSE_WINDOW_HOP_S": "5",
    "STREAMFUSE_WINDOW_GRACE_S": "10",
}


def _msg(i: int, ticker: str, text: str, source: str, ts: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"{source}-{i}",
            "text": text.format(name=TICKERS[ticker]),
            "source": source,
            "key": ticker,
            "ts": ts,
            "tasks": ["fin_sentiment", "entities"],
        }
    )


def _run(env: Env, start_worker, path: Path, lines: list[bytes]) -> list[dict]:
    env.vars.update(WINDOW_ENV)
    start_worker("recognize,infer,fuse,monitor", WINDOW_ENV)
    path.write_bytes(b"\n".join(lines) + b"\n")
    env.cli("produce", str(path), "--rate", "15")  # a live feed arrives roughly in time order
    results = env.tail_json("results", limit=len(lines), timeout=150)
    assert len({r["id"] for r in results}) == len(lines)
    # event time stops with the feed: idle time closes the last windows (grace + window)
    return env.tail_json("alerts", timeout=45)


def test_negative_burst_on_one_ticker_raises_exactly_the_expected_alerts(env: Env, start_worker, tmp_path):
    lines, i = [], 0
    for w in range(5):  # calm baseline: two BA items per window, plus other tickers elsewhere
        for k in range(2):
            lines.append(_msg(i, "BA", CALM[k], "ba-desk", T0 + w * WINDOW_MS + 1000 + k))
            i += 1
            lines.append(_msg(i, "MSFT", CALM[k], "newswire", T0 + w * WINDOW_MS + 2000 + k))
            i += 1
    burst_start = T0 + 5 * WINDOW_MS
    for k in range(12):
        lines.append(_msg(i, "BA", BAD[k % 3], "ba-desk", burst_start + 500 * k))
        i += 1
    lines.append(_msg(i, "AAPL", CALM[0], "newswire", burst_start + 3 * WINDOW_MS))
    alerts = _run(env, start_worker, tmp_path / "burst.jsonl", lines)

    fired = {(a["dimension"], a["key"], a["rule"]) for a in alerts}
    assert fired == {
        ("entity", "BA", "volume_spike"),
        ("entity", "BA", "sentiment_shift"),
        ("source", "ba-desk", "volume_spike"),
        ("source", "ba-desk", "sentiment_shift"),
    }, alerts
    shift = next(a for a in alerts if a["rule"] == "sentiment_shift" and a["dimension"] == "entity")
    assert shift["figures"]["z"] < 0 and shift["window_start_ms"] == burst_start
    assert len(shift["evidence"]) == 12


def test_calm_stream_raises_no_alert(env: Env, start_worker, tmp_path):
    lines, i = [], 0
    for w in range(8):
        for k, ticker in enumerate(("BA", "AAPL", "MSFT")):
            lines.append(_msg(i, ticker, CALM[k % 2], "newswire", T0 + w * WINDOW_MS + 1000 * k))
            i += 1
    alerts = _run(env, start_worker, tmp_path / "calm.jsonl", lines)
    assert alerts == []

"""A/B runs of one setting on the local broker: ``streamfuse bench-compare``.

The bench keeps a means only where it helps ("measure it, keep it where it helps"); this is
the command that measures one. Each round starts a fresh pipeline per value of the setting,
in turn (A, B, A, B, ...), so that drift on a noisy machine falls on both sides alike, runs
the same message mix through it (rate-limited, or as fast as it goes), and reports
throughput, latency percentiles and worker memory growth per run and the median per value.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from agents.bench import LAYOUT, WORKER_ENV, memory_growth, message_mix, running
from streams.settings import Settings


def parse_setting(spec: str) -> tuple[str, list[str]]:
    """``NAME=V1,V2[,...]`` -> (environment variable, values).

    A bare setting name gets the ``STREAMFUSE_`` prefix (``model_concurrency=0,1``)."""
    name, sep, values = spec.partition("=")
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name.strip() or len(vals) < 2:
        raise ValueError(f"expected NAME=V1,V2 (two or more values), got {spec!r}")
    name = name.strip()
    if not name.isupper():
        name = f"STREAMFUSE_{name.upper()}"
    return name, vals


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median throughput and latency percentiles, and the worst memory growth, of a value's runs."""
    out: dict[str, Any] = {"runs": len(runs)}
    out["throughput"] = statistics.median(r["throughput"] for r in runs)
    for p in ("p50", "p95", "p99"):
        out[p] = statistics.median(r["latency_ms"][p] for r in runs)
    growth = [g["growth"] for r in runs for g in r["memory"].values() if g.get("growth") is not None]
    out["max_rss_growth"] = max(growth) if growth else None
    idle = [r["idle_cores"] for r in runs if r.get("idle_cores")]
    if idle:
        out["idle_cores"] = {p: statistics.median(i[p] for i in idle if p in i) for p in idle[0]}
    return out


async def run_compare(
    settings: Settings,
    *,
    setting: str,
    values: list[str],
    rate: float | None,
    messages: int,
    rounds: int,
    out_dir: Path,
    console,
    idle_s: float = 0.0,
    warm_messages: int = 0,
) -> dict[str, Any]:
    """Alternate pipelines with ``setting`` at each value, ``rounds`` times; JSON under ``out_dir``.

    ``warm_messages`` first go through one unmeasured pipeline with the default settings, so
    that the broker's JIT has compiled its request paths before the first measured run (on a
    fresh broker, that run's broker used up to twice the CPU of the runs after it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in values}
    if warm_messages > 0:
        console.print(f"[bold]warm-up[/]: {warm_messages} messages, unmeasured")
        async with running(settings, LAYOUT, dict(WORKER_ENV), out_dir / "logs", console) as pipe:
            await pipe.run(message_mix(warm_messages, settings.data_path, "abwarm"), None, "warm-up")
    for i in range(rounds):
        for value in values:
            env = {**WORKER_ENV, setting: value}
            label = f"{setting}={value} #{i + 1}"
            console.print(f"[bold]{label}[/]: {messages} messages at {rate or 'full'} msg/s")
            async with running(settings, LAYOUT, env, out_dir / "logs", console) as pipe:
                idle = await pipe.idle_cores(idle_s) if idle_s > 0 else None
                res = await pipe.run(message_mix(messages, settings.data_path, f"ab{i}{value}"), rate, label)
            row = asdict(res)
            row["memory"] = memory_growth(row.pop("rss_mb"))
            if idle is not None:
                row["idle_cores"] = idle
            runs[value].append(row)
            lat = res.latency_ms
            console.print(f"   {res.throughput} msg/s, p50 {lat['p50']} ms, p99 {lat['p99']} ms")
    report = {
        "setting": setting,
        "values": values,
        "rate": rate,
        "messages": messages,
        "rounds": rounds,
        "idle_seconds": idle_s,
        "warm_messages": warm_messages,
        "layout": LAYOUT,
        "summary": {v: summarise(rs) for v, rs in runs.items()},
        "runs": runs,
    }
    path = out_dir / f"compare-{setting.lower()}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    report["file"] = str(path)
    return report

"""`streamfuse eval --stream`: the test splits through the running pipeline.

Each task's test split is produced to the input topic with an explicit ``tasks`` field and
``meta.models = "all"`` (every model of the task runs, so each one can be scored), and the
results are read back from sf.results. Per task it reports each model's score and the
fused score, computed from what came out of the stream, not from an offline loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from sklearn.metrics import accuracy_score, f1_score

from streams.io import read_topic
from streams.settings import Settings
from streams.topics import get_topics

# task -> (data set name, loader of its test split)
TASK_SETS = {
    "fin_sentiment": "fpb50",
    "sentiment": "sst2",
    "intent": "banking77",
}


def score(gold: list[str], pred: list[str]) -> dict[str, float]:
    return {
        "n": len(gold),
        "accuracy": round(float(accuracy_score(gold, pred)), 4),
        "macro_f1": round(float(f1_score(gold, pred, average="macro", zero_division=0)), 4),
    }


def summarise(gold: dict[str, str], results: list[dict[str, Any]], task: str) -> dict[str, Any]:
    """Per-model and fused scores for one task from the stream's results."""
    fused_g, fused_p = [], []
    strategies: dict[str, int] = defaultdict(int)
    per_model: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for r in results:
        out = r["outputs"].get(task)
        if out is None or r["id"] not in gold:
            continue
        g = gold[r["id"]]
        fused_g.append(g)
        fused_p.append(out.get("label") or "")
        strategies[out.get("strategy", "?")] += 1
        for vote in out.get("models", []):
            if vote.get("label") is not None:
                per_model[vote["model_id"]][0].append(g)
                per_model[vote["model_id"]][1].append(vote["label"])
    models = {m: score(g, p) for m, (g, p) in per_model.items()}
    fused = score(fused_g, fused_p) if fused_g else {}
    best = max(models.items(), key=lambda kv: kv[1]["accuracy"], default=(None, {}))
    return {
        "models": models,
        "fused": fused,
        "strategies": dict(strategies),
        "best_single": best[0],
        "fused_beats_best": bool(fused and best[1] and fused["accuracy"] > best[1]["accuracy"]),
    }


async def eval_stream(
    settings: Settings, tasks: list[str], limit: int | None, timeout: float
) -> dict[str, Any]:
    from models import data

    topics = get_topics(settings)
    run = f"eval-{uuid.uuid4().hex[:6]}"
    gold: dict[str, dict[str, str]] = {}
    msgs: list[tuple[str, bytes]] = []
    for task in tasks:
        split = data.LOADERS[TASK_SETS[task]]("test")
        if limit:
            split = data.subsample(split, limit)
        gold[task] = {}
        for i, (text, label) in enumerate(zip(split.texts, split.labels, strict=True)):
            mid = f"{run}-{task}-{i}"
            gold[task][mid] = label
            body = {
                "id": mid,
                "text": text,
                "source": "eval",
                "key": mid,
                "tasks": [task],
                "meta": {"models": "all", "budget_ms": 600_000},
            }
            msgs.append((mid, orjson.dumps(body)))
    want = {mid for mid, _ in msgs}
    results: dict[str, dict] = {}
    ready, done = asyncio.Event(), asyncio.Event()

    async def collect() -> None:
        async for rec in read_topic(settings, topics.results, from_beginning=False, ready=ready):
            v = rec["value"]
            if isinstance(v, dict) and v.get("id") in want:
                results[v["id"]] = v
                if len(results) == len(want):
                    done.set()
                    return

    collector = asyncio.create_task(collect())
    await ready.wait()
    producer = AIOKafkaProducer(**settings.client_kwargs(), linger_ms=5)
    await producer.start()
    try:
        futs = [await producer.send(topics.input, body, key=mid.encode()) for mid, body in msgs]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    t0 = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout)
    collector.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await collector
    report: dict[str, Any] = {
        "sent": len(want),
        "received": len(results),
        "seconds": round(time.monotonic() - t0, 1),
        "tasks": {},
    }
    for task in tasks:
        task_results = [r for mid, r in results.items() if mid in gold[task]]
        report["tasks"][task] = {"dataset": TASK_SETS[task], **summarise(gold[task], task_results, task)}
    return report


def plot(report: dict[str, Any], png) -> None:
    """Each model's accuracy against the fused accuracy, per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        rep = report["tasks"][task]
        names = sorted(rep["models"], key=lambda m: rep["models"][m]["accuracy"])
        values = [rep["models"][m]["accuracy"] for m in names]
        if rep["fused"]:
            names.append("fused")
            values.append(rep["fused"]["accuracy"])
        ax.barh(names, values, color=["#888"] * (len(names) - 1) + ["#2a7"])
        ax.set_xlim(min(values) - 0.05, 1.0)
        ax.set_title(f"{task} ({rep['dataset']})")
        ax.set_xlabel("accuracy through the stream")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)

"""`streamfuse eval kb-retrieval`: knowledge-base retrieval and the support assist, measured
offline on real data, written into the catalog.

- **Recall@k** of the kb model on BANKING77 (test, and validation): a query is a hit when
  one of its ``k`` retrieved articles lists the query's gold intent (the mapping rule of
  ``data/kb/README.md``). Recall@1 and MRR@k with it.
- **Hand-off rate** on CLINC150's out-of-scope test queries (1000 messages no intent
  template fits): each query goes through the code a ``support-chat`` message meets in the
  pipeline, in-process: the planner (cleaning, language, the source's tasks, allocation at
  idle load), every allocated model, fusion and the assist (``agents.results.build_result``).
  The same run on BANKING77 test gives the in-scope hand-off rate (its cost), and both
  come with the reasons behind the hand-offs.
- The **threshold sweep** on the validation splits (CLINC150 oos validation vs BANKING77
  validation) that ``assist_handoff_below`` was chosen from.
- **Latency**: per batch size through ``predict`` (encoder pass included, as for every
  head), and the exact search alone at the current size and at 100k synthetic articles:
  the numbers behind using a plain matrix product rather than an ANN library.

It lives in ``agents`` because it runs the assist rule and fusion (``models`` must not
depend on ``agents``). The summary goes into ``models/catalog.json``, the full report into
``models/artifacts/<model-id>/eval.json``.
"""

from __future__ import annotations

import os
import platform
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from agents.assist import REASONS, AssistRules
from agents.planning import Planner
from agents.results import build_result
from models import data
from models.adapters import build_adapter
from models.base import Adapter, ModelOutput
from models.kb import KBIndex, answers
from models.registry import CATALOG_PATH, Registry, save_metrics
from streams.records import InputMessage, Prediction, Result
from streams.settings import Settings, get_settings

console = Console(stderr=True)
SOURCE = "support-chat"
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _predict(adapter: Adapter, texts: Sequence[str]) -> list[ModelOutput]:
    """Backbone heads read embeddings from the evaluation cache (same vectors, once)."""
    if hasattr(adapter, "predict_embeddings"):
        from models.embed_cache import embed

        return adapter.predict_embeddings(embed(list(texts)))  # type: ignore[attr-defined]
    out: list[ModelOutput] = []
    for start in range(0, len(texts), 256):
        out.extend(adapter.predict(list(texts[start : start + 256])))
    return out


def retrieval_metrics(adapter: Any, texts: Sequence[str], gold: Sequence[str]) -> dict[str, Any]:
    """Recall@1, Recall@k and MRR@k of a kb adapter on labelled queries."""
    outputs = _predict(adapter, texts)
    index: KBIndex = adapter.index
    hits = [o.extra["articles"] for o in outputs]
    ranks = []
    for row, intent in zip(hits, gold, strict=True):
        rank = next(
            (i + 1 for i, h in enumerate(row) if (a := index.get(h["id"])) and answers(a, intent)), None
        )
        ranks.append(rank)
    k = adapter.k
    per_intent: dict[str, list[bool]] = defaultdict(list)
    for r, g in zip(ranks, gold, strict=True):
        per_intent[g].append(r is not None)
    worst = sorted(((float(np.mean(v)), g) for g, v in per_intent.items()))[:10]
    return {
        "n": len(texts),
        "k": k,
        f"recall_at_{k}": round(sum(r is not None for r in ranks) / len(ranks), 4),
        "recall_at_1": round(sum(r == 1 for r in ranks) / len(ranks), 4),
        f"mrr_at_{k}": round(float(np.mean([1.0 / r if r else 0.0 for r in ranks])), 4),
        "top1_score_mean": round(float(np.mean([o.score for o in outputs])), 4),
        "worst_intents": [{"intent": g, f"recall_at_{k}": round(v, 4)} for v, g in worst],
    }


class Replay:
    """Support-chat messages through planner, models, fusion and assist, in-process."""

    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self.planner = Planner(registry, settings, domain_model=None)  # the source sets the tasks
        self.adapters: dict[str, Adapter] = {}
        self.rules = AssistRules(handoff_below=settings.assist_handoff_below)
        self.labels_of = {s.id: s.labels for s in registry}

    def adapter(self, model_id: str) -> Adapter:
        if model_id not in self.adapters:
            self.adapters[model_id] = build_adapter(self.registry.get(model_id))
        return self.adapters[model_id]

    def run(self, texts: Sequence[str]) -> list[Result]:
        msgs = [(InputMessage(text=t, source=SOURCE), f"q{i}") for i, t in enumerate(texts)]
        planned = self.planner.plan_batch(msgs, {}, 0)
        by_model: dict[str, list[tuple[int, Any]]] = defaultdict(list)
        for i, p in enumerate(planned):
            for st in p.subtasks:
                by_model[st.model_id].append((i, st))
        preds: list[dict[tuple[str, str], Prediction]] = [{} for _ in planned]
        for model_id, items in by_model.items():
            outputs = _predict(self.adapter(model_id), [st.text for _, st in items])
            for (i, st), out in zip(items, outputs, strict=True):
                preds[i][(st.task, model_id)] = Prediction(
                    message_id=st.message_id,
                    task=st.task,
                    model_id=model_id,
                    label=out.label,
                    score=float(out.score),
                    probs=out.probs,
                    extra=out.extra or None,
                    ts=0,
                )
        return [
            build_result(
                p.plan,
                preds[i],
                0,
                partial=False,
                uncertain_below=self.settings.uncertain_below,
                labels_of=self.labels_of,
                assist_rules=self.rules,
            )
            for i, p in enumerate(planned)
        ]


def handoff_summary(results: Sequence[Result]) -> dict[str, Any]:
    """Hand-off rate and reasons (a turn without an assist counts as not handed off)."""
    n = len(results)
    handed = [r.assist is not None and r.assist.handoff for r in results]
    reasons: Counter[str] = Counter()
    for r in results:
        if r.assist is None:
            reasons["no_assist"] += 1
        else:
            reasons.update(r.assist.handoff_reasons)
    with_articles = sum(bool(r.assist and r.assist.articles) for r in results)
    return {
        "n": n,
        "handoff_rate": round(sum(handed) / n, 4) if n else None,
        "reasons": {k: round(reasons[k] / n, 4) for k in (*REASONS, "no_assist") if reasons[k]},
        "articles_shown_rate": round(with_articles / n, 4) if n else None,
        "template_rate": round(sum(bool(r.assist and r.assist.reply) for r in results) / n, 4) if n else None,
    }


def _intent_scores(results: Sequence[Result]) -> np.ndarray:
    out = []
    for r in results:
        intent = r.outputs.get("intent")
        out.append(intent.score if intent is not None and intent.score is not None else 0.0)
    return np.array(out)


def threshold_sweep(in_scope: Sequence[Result], oos: Sequence[Result]) -> dict[str, Any]:
    """Share of each set under each confidence threshold; the best balances the two."""
    a, b = _intent_scores(in_scope), _intent_scores(oos)
    rows = []
    for t in SWEEP:
        oos_rate, in_rate = float((b < t).mean()), float((a < t).mean())
        rows.append(
            {
                "threshold": t,
                "oos_below": round(oos_rate, 4),
                "in_scope_below": round(in_rate, 4),
                "balanced": round((oos_rate + 1 - in_rate) / 2, 4),
            }
        )
    best = max(rows, key=lambda r: (r["balanced"], -r["threshold"]))
    return {"rows": rows, "best_threshold": best["threshold"]}


def search_timing(adapter: Any, n_queries: int = 32, synthetic: int = 100_000) -> dict[str, Any]:
    """Exact search time per query at the index's size and at ``synthetic`` articles."""
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((n_queries, adapter.index.dim)).astype(np.float32)

    def per_query_ms(index: KBIndex) -> float:
        index.search(queries, adapter.k)
        times = []
        for _ in range(30):  # the median of many: the 2 shared cores are noisy
            t0 = time.perf_counter()
            index.search(queries, adapter.k)
            times.append((time.perf_counter() - t0) * 1000 / n_queries)
        return round(float(np.median(times)), 4)

    big = KBIndex(adapter.index.dim)
    from models.kb import Article

    vectors = rng.standard_normal((synthetic, adapter.index.dim)).astype(np.float32)
    big.replace((Article(id=f"s{i}", title="t"), v) for i, v in enumerate(vectors))
    return {
        "articles": len(adapter.index),
        "ms_per_query": per_query_ms(adapter.index),
        f"ms_per_query_at_{synthetic}": per_query_ms(big),
        "batch": n_queries,
    }


def _environment() -> dict[str, Any]:
    import torch

    from models.encoder import select_device

    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": select_device(),
    }


def evaluate_kb(model_id: str = "kb-retrieval", write: bool = True, latency: bool = True) -> dict[str, Any]:
    """Measure everything above; with ``write`` into the catalog and the artifact folder."""
    settings = get_settings()
    registry = Registry.load(CATALOG_PATH)
    spec = registry.get(model_id)
    replay = Replay(registry, settings)
    adapter = replay.adapter(model_id)
    adapter.use_bundled()  # type: ignore[attr-defined]  # measured on the bundled articles
    report: dict[str, Any] = {"model_id": model_id, "task": spec.task, "articles": len(adapter.index)}  # type: ignore[attr-defined]

    console.log("retrieval: banking77 validation and test")
    val, test = data.banking77("validation"), data.banking77("test")
    report["retrieval"] = {
        "banking77_test": retrieval_metrics(adapter, test.texts, test.labels),
        "banking77_validation": retrieval_metrics(adapter, val.texts, val.labels),
    }

    console.log("assist: clinc150 oos and banking77 through planner, models, fusion and assist")
    c_val, c_test = data.clinc150("validation"), data.clinc150("test")
    oos_val = [t for t, lab in zip(c_val.texts, c_val.labels, strict=True) if lab == "oos"]
    oos_test = [t for t, lab in zip(c_test.texts, c_test.labels, strict=True) if lab == "oos"]
    res = {
        "clinc150_oos_test": replay.run(oos_test),
        "banking77_test": replay.run(test.texts),
        "clinc150_oos_validation": replay.run(oos_val),
        "banking77_validation": replay.run(val.texts),
    }
    allocation = next(
        (r.outputs["intent"].allocation for r in res["banking77_test"] if "intent" in r.outputs), None
    )
    report["assist"] = {
        "source": SOURCE,
        "intent_models": allocation.weights if allocation is not None else {},
        "handoff_below": replay.rules.handoff_below,
        **{name: handoff_summary(rs) for name, rs in res.items()},
        "threshold_sweep_validation": threshold_sweep(
            res["banking77_validation"], res["clinc150_oos_validation"]
        ),
    }
    report["search"] = search_timing(adapter)
    if latency:
        from models.evaluate import measure_latency

        report["latency_ms"] = measure_latency(adapter, test.texts)
    k = adapter.k  # type: ignore[attr-defined]
    rt, rv = report["retrieval"]["banking77_test"], report["retrieval"]["banking77_validation"]
    oos, b77 = report["assist"]["clinc150_oos_test"], report["assist"]["banking77_test"]
    summary = {
        "test_set": "banking77_test",
        "n": rt["n"],
        f"recall_at_{k}": rt[f"recall_at_{k}"],
        "recall_at_1": rt["recall_at_1"],
        f"mrr_at_{k}": rt[f"mrr_at_{k}"],
        f"val_recall_at_{k}": rv[f"recall_at_{k}"],
        "articles": report["articles"],
        "handoff_rate_clinc150_oos_test": oos["handoff_rate"],
        "handoff_n": oos["n"],
        "handoff_reasons_clinc150_oos_test": oos["reasons"],
        "handoff_rate_banking77_test": b77["handoff_rate"],
        "handoff_below": replay.rules.handoff_below,
        "handoff_below_best_on_validation": report["assist"]["threshold_sweep_validation"]["best_threshold"],
        "search_ms_per_query": report["search"]["ms_per_query"],
        "environment": _environment(),
    }
    report["metrics"] = summary
    if write:
        save_metrics(model_id, metrics=summary, latency_ms=report.get("latency_ms"))
        from models.evaluate import update_costs

        update_costs()
        path = spec.artifact_path()
        if path is not None and path.is_dir():
            (path / "eval.json").write_bytes(
                orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"
            )
    return report


def summary_table(report: dict[str, Any]) -> Table:
    """The figures of one report, for the terminal."""
    m, a = report["metrics"], report["assist"]
    k = report["retrieval"]["banking77_test"]["k"]
    t = Table(title=f"{report['model_id']}: retrieval over {report['articles']} articles, support assist")
    t.add_column("measure")
    t.add_column("value", justify="right")
    rows = [
        (f"Recall@{k} banking77 test (n={m['n']})", f"{m[f'recall_at_{k}']:.4f}"),
        ("Recall@1 banking77 test", f"{m['recall_at_1']:.4f}"),
        (f"MRR@{k} banking77 test", f"{m[f'mrr_at_{k}']:.4f}"),
        (f"Recall@{k} banking77 validation", f"{m[f'val_recall_at_{k}']:.4f}"),
        (
            f"hand-off rate clinc150 oos test (n={m['handoff_n']})",
            f"{m['handoff_rate_clinc150_oos_test']:.4f}",
        ),
        *[(f"  reason {r}", f"{v:.4f}") for r, v in a["clinc150_oos_test"]["reasons"].items()],
        (
            f"hand-off rate banking77 test (in scope, n={a['banking77_test']['n']})",
            f"{m['handoff_rate_banking77_test']:.4f}",
        ),
        *[(f"  reason {r}", f"{v:.4f}") for r, v in a["banking77_test"]["reasons"].items()],
        (
            "confidence threshold (configured / best on validation)",
            f"{m['handoff_below']} / {m['handoff_below_best_on_validation']}",
        ),
        ("intent models (weights)", ", ".join(f"{k_}={v}" for k_, v in a["intent_models"].items())),
        (f"exact search, ms/query at {report['search']['articles']} articles", f"{m['search_ms_per_query']}"),
        ("exact search, ms/query at 100000 articles", f"{report['search']['ms_per_query_at_100000']}"),
    ]
    if "latency_ms" in report:
        lat = " / ".join(f"{v:.3g}" for v in report["latency_ms"].values())
        rows.append(("predict ms/item at batch 1/8/32/128", lat))
    for row in rows:
        t.add_row(*row)
    return t

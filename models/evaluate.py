"""Measure a model on its held-out test split(s) and its validation split, and time it.

``evaluate(model_id)`` returns everything it measured: per test set accuracy, macro-F1,
scikit-learn's classification report (text and dict) and the confusion matrix; the
validation metrics (``val_accuracy``/``val_macro_f1``, which allocation weights by);
latency in ms per item at batch sizes 1, 8, 32 and 128 on this machine. The summary goes
into ``models/catalog.json`` (``models.registry.save_metrics``) and the full report into
``models/artifacts/<model-id>/eval.json``.

    python -m models.evaluate MODEL [MODEL ...] | --all
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from models.adapters import build_adapter
from models.base import Adapter, ModelOutput
from models.calibration import expected_calibration_error
from models.data import Split, TokenSplit
from models.recipes import RECIPES
from models.registry import CATALOG_PATH, Registry, save_metrics

console = Console(stderr=True)

BATCH_SIZES = (1, 8, 32, 128)
LATENCY_BUDGET_S = 2.0  # time spent per batch size (after one warm-up call)
REFERENCE_MODEL = "vader-fin"  # cost 1.0 = this lexicon model's per-item latency


def _predict(adapter: Adapter, texts: Sequence[str]) -> list[ModelOutput]:
    """Predict a whole split; MiniLM heads read embeddings from the training cache (the
    same vectors the encoder gives, computed once) instead of re-encoding."""
    from models.encoder import bf16_enabled, int8_encoder_enabled

    # The cache holds fp32 vectors: an int8 or bf16 encoder must be scored on its own embeddings.
    if hasattr(adapter, "predict_embeddings") and not (int8_encoder_enabled() or bf16_enabled()):
        from models.embed_cache import embed

        return adapter.predict_embeddings(embed(texts))  # type: ignore[attr-defined]
    out: list[ModelOutput] = []
    for start in range(0, len(texts), 256):
        out.extend(adapter.predict(texts[start : start + 256]))
    return out


def classification_metrics(
    gold: Sequence[str], outputs: Sequence[ModelOutput], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, report (text + dict), confusion matrix and ECE for one split."""
    pred = [o.label if o.label is not None else "" for o in outputs]
    labels = list(labels)
    present = [lab for lab in labels if lab in set(gold) or lab in set(pred)]
    metrics: dict[str, Any] = {
        "n": len(gold),
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, labels=present, average="macro", zero_division=0)),
        "report": classification_report(gold, pred, labels=present, output_dict=True, zero_division=0),
        "report_text": classification_report(gold, pred, labels=present, zero_division=0, digits=4),
        "confusion_matrix": {
            "labels": present,
            "matrix": confusion_matrix(gold, pred, labels=present).tolist(),
        },
    }
    if outputs and outputs[0].probs is not None:
        probs = np.array([[o.probs.get(lab, 0.0) for lab in labels] for o in outputs])  # type: ignore[union-attr]
        idx = {lab: i for i, lab in enumerate(labels)}
        y = np.array([idx.get(g, -1) for g in gold])
        metrics["ece"] = expected_calibration_error(probs, y)
    if "oos" in labels:
        gold_a, pred_a = np.array(gold), np.array(pred)
        is_oos = gold_a == "oos"
        metrics["in_scope_accuracy"] = float((pred_a[~is_oos] == gold_a[~is_oos]).mean())
        metrics["oos_recall"] = float((pred_a[is_oos] == "oos").mean()) if is_oos.any() else None
    return metrics


def measure_latency(
    adapter: Adapter, texts: Sequence[str], batch_sizes: Sequence[int] = BATCH_SIZES
) -> dict[str, float]:
    """Median wall-clock ms per item of ``adapter.predict`` at each batch size."""
    out: dict[str, float] = {}
    pool = list(texts) or ["hello"]
    while len(pool) < max(batch_sizes):
        pool = pool + pool
    for bs in batch_sizes:
        batches = [pool[i : i + bs] for i in range(0, len(pool) - bs + 1, bs)]
        adapter.predict(batches[0])  # warm-up: lazy loads, allocator, caches
        times: list[float] = []
        spent = 0.0
        k = 0
        while (spent < LATENCY_BUDGET_S or len(times) < 3) and len(times) < 200:
            batch = batches[k % len(batches)]
            k += 1
            t0 = time.perf_counter()
            adapter.predict(batch)
            dt = time.perf_counter() - t0
            times.append(dt * 1000.0 / bs)
            spent += dt
        out[str(bs)] = round(statistics.median(times), 4)
    return out


def _environment(adapter: Adapter | None = None) -> dict[str, Any]:
    import torch

    from models.encoder import bf16_enabled, int8_encoder_enabled, select_device

    env: dict[str, Any] = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": select_device(),
    }
    # Which weights the figures were measured with (MiniLM models can run int8 on CPU).
    if hasattr(adapter, "int8"):
        env["int8"] = bool(adapter.int8)  # type: ignore[union-attr]
        env["bf16"] = bool(getattr(adapter, "bf16", False))
    elif getattr(adapter, "backbone", None) == "minilm":
        env["int8"] = int8_encoder_enabled()
        env["bf16"] = not env["int8"] and bf16_enabled()
    return env


def _summary(name: str, m: dict[str, Any]) -> dict[str, Any]:
    keep = ("n", "accuracy", "macro_f1", "ece", "in_scope_accuracy", "oos_recall")
    return {k: (round(m[k], 4) if isinstance(m[k], float) else m[k]) for k in keep if k in m}


def _entity_metrics(adapter: Adapter, texts: Sequence[str]) -> dict[str, Any]:
    outputs = _predict(adapter, texts)
    n_ent = [len(o.entities or []) for o in outputs]
    cashtag_texts = [i for i, t in enumerate(texts) if "$" in t]
    return {
        "n": len(texts),
        "texts_with_entities": round(float(np.mean([n > 0 for n in n_ent])), 4),
        "entities_per_text": round(float(np.mean(n_ent)), 4),
        "texts_with_dollar_sign": len(cashtag_texts),
        "note": "no labelled ticker data set: coverage on twitter_fin test, not accuracy",
    }


def _per_type_f1(report: dict[str, Any], types: Sequence[str]) -> dict[str, float]:
    return {t: round(float(report[t]["f1-score"]), 4) for t in types if t in report}


def _token_offsets(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The sentence as text (tokens joined by spaces) and each token's character span."""
    spans, pos = [], 0
    for tok in tokens:
        spans.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    return " ".join(tokens), spans


def spans_to_iob(entities: Sequence[Any], spans: Sequence[tuple[int, int]]) -> list[str]:
    """IOB2 tags for the tokens at ``spans`` from entities given as character offsets: a
    token belongs to an entity when their character ranges overlap."""
    tags = ["O"] * len(spans)
    for ent in sorted(entities, key=lambda e: e.start):
        inside = [i for i, (a, b) in enumerate(spans) if a < ent.end and ent.start < b and tags[i] == "O"]
        for k, i in enumerate(inside):
            tags[i] = ("B-" if k == 0 else "I-") + ent.type
    return tags


def ner_metrics(adapter: Adapter, split: TokenSplit) -> dict[str, Any]:
    """Entity-level precision/recall/F1 (seqeval, IOB2) of a span-producing model on a
    CoNLL split: each sentence is given to ``predict`` as text (tokens joined by spaces)
    and the returned character spans are mapped back onto the gold tokens."""
    from seqeval.metrics import classification_report as seq_report
    from seqeval.metrics import f1_score as seq_f1
    from seqeval.metrics import precision_score, recall_score

    joined = [_token_offsets(toks) for toks in split.tokens]
    outputs = _predict(adapter, [t for t, _ in joined])
    pred, bad_offsets = [], 0
    for (text, spans), out in zip(joined, outputs, strict=True):
        ents = out.entities or []
        bad_offsets += sum(text[e.start : e.end] != e.text for e in ents)
        pred.append(spans_to_iob(ents, spans))
    gold = [list(t) for t in split.tags]
    return {
        "n": len(split.tokens),
        "f1": float(seq_f1(gold, pred)),
        "precision": float(precision_score(gold, pred)),
        "recall": float(recall_score(gold, pred)),
        "entities_with_bad_offsets": bad_offsets,
        "report": seq_report(gold, pred, output_dict=True),
        "report_text": seq_report(gold, pred, digits=4),
        "scorer": "seqeval (default, IOB2) on predict(text) spans mapped back to the CoNLL tokens",
    }


def probe_metrics(
    adapter: Adapter, probes: dict[str, Sequence[str]], others: Sequence[Adapter]
) -> dict[str, Any]:
    """For a model without labelled data: per probe set, the share of texts given each
    label, and the share on which each other model of the task agrees with it."""
    out: dict[str, Any] = {}
    for name, texts in probes.items():
        labels = [o.label for o in _predict(adapter, texts)]
        m: dict[str, Any] = {
            "n": len(texts),
            "label_share": {lab: round(labels.count(lab) / max(1, len(texts)), 4) for lab in adapter.labels},
        }
        for other in others:
            theirs = [o.label for o in _predict(other, texts)]
            agree = sum(a == b for a, b in zip(labels, theirs, strict=True))
            m.setdefault("agreement", {})[other.model_id] = round(agree / max(1, len(texts)), 4)
        out[name] = m
    return out


def evaluate(
    model_id: str, write: bool = True, latency: bool = True, adapter: Adapter | None = None
) -> dict[str, Any]:
    """Score ``model_id`` on its test split(s) and validation split and time it.

    Returns the full result; with ``write`` the summary metrics and latencies go into the
    catalog and the full result into the artifact's ``eval.json``. ``adapter``: the model,
    when the caller has already built it (``models.precision``).
    """
    recipe = RECIPES[model_id]
    spec = Registry.load(CATALOG_PATH, include_test=True, include_unserved=True).get(model_id)
    adapter = adapter or build_adapter(spec)
    result: dict[str, Any] = {"model_id": model_id, "task": spec.task, "tests": {}}
    summary: dict[str, Any] = {}
    latency_texts: list[str] = []
    if not recipe.tests and recipe.probes:
        # No labelled data for this task: label shares and agreement, never an accuracy.
        registry = Registry.load(CATALOG_PATH, include_test=False)
        others = [build_adapter(s) for s in registry.for_task(spec.task) if s.id != model_id]
        texts = {name: fn().texts for name, fn in recipe.probes.items()}
        latency_texts = next(iter(texts.values()))
        result["probes"] = probe_metrics(adapter, texts, others)
        summary["note"] = (
            f"no labelled {spec.task} data set: share of texts flagged and agreement with the other "
            f"{spec.task} models on unlabelled texts, not accuracy"
        )
        summary["probes"] = result["probes"]
    elif spec.task == "entities":
        for name, fn in recipe.tests.items():
            split = fn()
            if isinstance(split, TokenSplit):
                latency_texts = latency_texts or [" ".join(t) for t in split.tokens]
                m = ner_metrics(adapter, split)
                result["tests"][name] = m
                summary.setdefault("test_set", name)
                summary.update(
                    {k: round(m[k], 4) for k in ("f1", "precision", "recall")}
                    | {"n": m["n"], "per_type_f1": _per_type_f1(m["report"], spec.labels)}
                )
                # validation F1 as measured by training on valid.txt (the kept epoch)
                cfg_path = spec.artifact_path()
                if cfg_path is not None and (cfg_path / "model.json").exists():
                    meta = orjson.loads((cfg_path / "model.json").read_bytes()).get("metadata", {})
                    hist = {h["epoch"]: h for h in meta.get("epochs_run", [])}
                    best = hist.get(meta.get("best_epoch"), {})
                    if "val_entity_f1" in best:
                        summary["val_f1"] = best["val_entity_f1"]
            else:
                latency_texts = latency_texts or split.texts
                result["tests"][name] = _entity_metrics(adapter, split.texts)
                summary.update({k: v for k, v in result["tests"][name].items()})
    else:
        if recipe.validation is not None:
            val: Split = recipe.validation()
            vm = classification_metrics(val.labels, _predict(adapter, val.texts), adapter.labels)
            result["validation"] = vm
            summary["val_accuracy"] = round(vm["accuracy"], 4)
            summary["val_macro_f1"] = round(vm["macro_f1"], 4)
        for i, (name, fn) in enumerate(recipe.tests.items()):
            split = fn()
            m = classification_metrics(split.labels, _predict(adapter, split.texts), adapter.labels)
            result["tests"][name] = m
            if i == 0:
                latency_texts = split.texts
                summary["test_set"] = name
                summary.update(_summary(name, m))
            else:
                summary.setdefault("other_tests", {})[name] = _summary(name, m)
    summary["environment"] = _environment(adapter)
    result["metrics"] = summary
    if latency:
        result["latency_ms"] = measure_latency(adapter, latency_texts)
    if write:
        save_metrics(model_id, metrics=summary, latency_ms=result.get("latency_ms"))
        path = spec.artifact_path()
        if path is not None and path.is_dir():
            (path / "eval.json").write_bytes(
                orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"
            )
            plot_confusion(result, path / "confusion.png")
    return result


def plot_confusion(result: dict[str, Any], png: Path) -> bool:
    """The primary test split's confusion matrix as a PNG beside eval.json (row-normalised;
    counts in the cells when there are few labels). False when there is no matrix."""
    tests = result.get("tests") or {}
    first = next((m for m in tests.values() if isinstance(m, dict) and "confusion_matrix" in m), None)
    if first is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = first["confusion_matrix"]["labels"]
    matrix = np.array(first["confusion_matrix"]["matrix"], dtype=float)
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.18 * len(labels), 22)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(labels))
    fontsize = 9 if len(labels) <= 20 else 5
    ax.set_xticks(ticks, labels, rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, labels, fontsize=fontsize)
    if len(labels) <= 12:
        for i in ticks:
            for j in ticks:
                ax.text(
                    j,
                    i,
                    int(matrix[i, j]),
                    ha="center",
                    va="center",
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    name = next(iter(tests))
    ax.set_title(f"{result.get('model_id')} on {name}: accuracy {first['accuracy']:.3f}")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return True


def update_costs(path: Any = CATALOG_PATH) -> dict[str, float]:
    """Set each model's ``cost`` to its measured ms/item at batch 32 relative to the
    lexicon reference model (cost 1.0), so allocation sees real relative costs."""
    raw = orjson.loads(path.read_bytes())
    by_id = {e["id"]: e for e in raw["models"]}
    ref = by_id.get(REFERENCE_MODEL, {}).get("latency_ms", {}).get("32")
    if not ref:
        return {}
    costs = {}
    for entry in raw["models"]:
        lat = entry.get("latency_ms", {}).get("32")
        if lat:
            entry["cost"] = round(max(0.01, lat / ref), 3)
            costs[entry["id"]] = entry["cost"]
    path.write_bytes(orjson.dumps(raw, option=orjson.OPT_INDENT_2) + b"\n")
    return costs


def evaluate_all(model_ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Evaluate every model in the catalog (or the given ones), then refresh costs."""
    known = {s.id for s in Registry.load(CATALOG_PATH, include_test=True, include_unserved=True)}
    ids = model_ids or [m for m in RECIPES if m in known]
    results = {}
    columns = (
        TextColumn("evaluating {task.fields[model]}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("eval", total=len(ids), model="")
        for model_id in ids:
            bar.update(task, model=model_id)
            results[model_id] = evaluate(model_id)
            bar.advance(task)
    update_costs()
    return results


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _print_table(results: dict[str, dict[str, Any]]) -> None:
    table = Table(title="held-out test metrics (ms/item at batch 1/8/32/128)")
    for col in ("model", "test set", "n", "acc", "macro-F1", "entity F1", "val F1", "latency ms"):
        table.add_column(col)
    for mid, r in results.items():
        m = r["metrics"]
        lat = r.get("latency_ms", {})
        table.add_row(
            mid,
            str(m.get("test_set", "-")),
            str(m.get("n", "-")),
            f"{m['accuracy']:.4f}" if "accuracy" in m else "-",
            f"{m['macro_f1']:.4f}" if "macro_f1" in m else "-",
            f"{m['f1']:.4f}" if "f1" in m else "-",
            _fmt(m.get("val_macro_f1", m.get("val_f1"))),
            " / ".join(f"{lat[k]:.3g}" for k in lat),
        )
    Console(width=140).print(table)


def main(argv: list[str] | None = None) -> int:
    """``python -m models.evaluate MODEL [MODEL ...] | --all [--json]``."""
    parser = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__)
    parser.add_argument("models", nargs="*")
    parser.add_argument("--all", action="store_true", help="evaluate every catalog model")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if not args.all and not args.models:
        parser.error("name a model or pass --all")
    results = evaluate_all(None if args.all else args.models)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(results, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    else:
        _print_table(results)
        for mid, r in results.items():
            for name, m in r["tests"].items():
                if "report_text" in m and len(m.get("confusion_matrix", {}).get("labels", [])) <= 10:
                    console.print(f"[bold]{mid}[/] on {name}\n{m['report_text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

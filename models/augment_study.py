"""Does augmentation help the TF-IDF models? Train each with and without it and compare.

For every TF-IDF recipe both arms go through the same trainer (:func:`models.train.fit_tfidf`:
training data and C chosen on the clean validation split) into a scratch folder, never
into ``models/artifacts``; each is scored on the validation split, on every test split of
the recipe, and on a noisy copy of the primary test split (the same kinds of noise, another
seed), as an extra view of robustness to chat-like text.

The issue asks to keep augmentation "only where it helps on the test split": ``helped`` is
true when both accuracy and macro-F1 on the primary test split are higher with it. The
validation figures are reported beside it so a test-only gain can be seen for what it is.

    python -m models.augment_study [MODEL ...] [--out bench/results/augment-study.json]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from models.augment import AugmentConfig, augment_text, text_seed
from models.data import SEED
from models.recipes import RECIPES, Recipe
from models.registry import ModelSpec

console = Console(stderr=True)

STUDY_CONFIG = AugmentConfig()  # the recipes that keep augmentation use exactly this
DEFAULT_OUT = Path("bench/results/augment-study.json")
NOISY_TEST_SEED = SEED + 1  # the noisy test copy must not share the training noise


def tfidf_models() -> list[str]:
    """Every recipe trained by the TF-IDF trainer."""
    return [mid for mid, r in RECIPES.items() if r.adapter == "tfidf_linear"]


def noisy_copy(texts: Sequence[str], cfg: AugmentConfig, seed: int = NOISY_TEST_SEED) -> list[str]:
    """One noisy version of every text (order kept), seeded per text."""
    return [augment_text(t, random.Random(text_seed(seed, i, t)), cfg) for i, t in enumerate(texts)]


def _scores(gold: Sequence[str], adapter: Any, texts: Sequence[str]) -> dict[str, float]:
    from models.evaluate import _predict, classification_metrics

    m = classification_metrics(gold, _predict(adapter, list(texts)), adapter.labels)
    return {"n": m["n"], "accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4)}


def run_arm(
    recipe: Recipe, augment: AugmentConfig | None, folder: Path, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Train one arm into ``folder`` and score it on validation, tests and the noisy test."""
    from models.adapters.tfidf_linear import TfidfLinearAdapter
    from models.train import fit_tfidf, seed_everything

    seed_everything()
    t0 = time.perf_counter()
    config = fit_tfidf(recipe, progress, augment, folder)
    seconds = time.perf_counter() - t0
    spec = ModelSpec.model_validate(recipe.spec_fields() | {"artifact": str(folder)})
    adapter = TfidfLinearAdapter(spec)
    assert recipe.validation is not None
    val = recipe.validation()
    out: dict[str, Any] = {
        "train_set": config["metadata"]["train_set"],
        "C": config["metadata"]["C"],
        "train_texts": config["metadata"]
        .get("augment", {})
        .get("train_size_augmented", config["metadata"]["train_sizes"]["train"]),
        "train_seconds": round(seconds, 1),
        "validation": _scores(val.labels, adapter, val.texts),
        "tests": {},
    }
    for i, (name, fn) in enumerate(recipe.tests.items()):
        split = fn()
        out["tests"][name] = _scores(split.labels, adapter, split.texts)
        if i == 0:
            out["noisy_test"] = _scores(split.labels, adapter, noisy_copy(split.texts, STUDY_CONFIG))
    return out


def study(model_ids: Sequence[str] | None = None, cfg: AugmentConfig = STUDY_CONFIG) -> dict[str, Any]:
    """Both arms for every TF-IDF model (or the given ones); the study's JSON report."""
    ids = list(model_ids or tfidf_models())
    report: dict[str, Any] = {
        "augment": cfg.to_dict(),
        "seed": SEED,
        "noisy_test_seed": NOISY_TEST_SEED,
        "rule": "keep augmentation where accuracy and macro-F1 on the primary test split both rise",
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="sf-augment-") as tmp:
        for mid in ids:
            recipe = RECIPES[mid]
            if recipe.adapter != "tfidf_linear":
                raise ValueError(f"{mid} is not a TF-IDF model; the study covers {tfidf_models()}")
            arms = {}
            for arm, augment in (("off", None), ("on", cfg)):
                tag = f"[{mid} augment {arm}]"
                say = lambda msg, tag=tag: console.log(f"{tag} {msg}")  # noqa: E731
                arms[arm] = run_arm(recipe, augment, Path(tmp) / arm / mid, say)
            test = next(iter(recipe.tests))
            off, on = arms["off"]["tests"][test], arms["on"]["tests"][test]
            report["models"][mid] = {
                "primary_test": test,
                "off": arms["off"],
                "on": arms["on"],
                "delta_test_accuracy": round(on["accuracy"] - off["accuracy"], 4),
                "delta_test_macro_f1": round(on["macro_f1"] - off["macro_f1"], 4),
                "delta_val_macro_f1": round(
                    arms["on"]["validation"]["macro_f1"] - arms["off"]["validation"]["macro_f1"], 4
                ),
                "delta_noisy_test_accuracy": round(
                    arms["on"]["noisy_test"]["accuracy"] - arms["off"]["noisy_test"]["accuracy"], 4
                ),
                "helped": on["accuracy"] > off["accuracy"] and on["macro_f1"] > off["macro_f1"],
            }
    return report


def table(report: dict[str, Any]) -> Table:
    """The report as a terminal table (primary test split, off -> on)."""
    t = Table(title="augmentation study (off -> on)")
    for col in ("model", "test set", "accuracy", "macro-F1", "val macro-F1", "noisy test acc", "keep"):
        t.add_column(col)
    for mid, r in report["models"].items():
        test = r["primary_test"]
        off, on = r["off"], r["on"]

        def pair(a: float, b: float) -> str:
            return f"{a:.4f} -> {b:.4f}"

        t.add_row(
            mid,
            test,
            pair(off["tests"][test]["accuracy"], on["tests"][test]["accuracy"]),
            pair(off["tests"][test]["macro_f1"], on["tests"][test]["macro_f1"]),
            pair(off["validation"]["macro_f1"], on["validation"]["macro_f1"]),
            pair(off["noisy_test"]["accuracy"], on["noisy_test"]["accuracy"]),
            "yes" if r["helped"] else "no",
        )
    return t


def write_report(report: dict[str, Any], out: Path = DEFAULT_OUT) -> Path:
    """Write the report as indented JSON (creating the folder)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m models.augment_study [MODEL ...] [--out PATH] [--json]``."""
    parser = argparse.ArgumentParser(prog="python -m models.augment_study", description=__doc__)
    parser.add_argument("models", nargs="*", help=f"default: {' '.join(tfidf_models())}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = parser.parse_args(argv)
    report = study(args.models or None)
    path = write_report(report, args.out)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
    else:
        Console().print(table(report))
        console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

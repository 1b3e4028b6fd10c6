"""What running a torch model in bfloat16 on CPU changes: ``python -m models.precision ID...``.

For each model: its primary test score in float32 and in bfloat16 (``STREAMFUSE_BF16``), and,
for sentence classifiers, how far a text's probabilities move between predicting it alone and
predicting it in batches of 32 (a padded text's result depends on its batch in bfloat16).
Nothing is written to the catalog; ``streamfuse eval`` measures the precision that is served.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from models.adapters import build_adapter
from models.encoder import reset_encoder
from models.evaluate import evaluate
from models.recipes import RECIPES
from models.registry import Registry

BATCH = 32
SCORES = ("accuracy", "f1")  # the primary score: accuracy, or entity F1 for the tagger


@contextmanager
def precision(bf16: bool) -> Iterator[None]:
    """Adapters built inside run in bfloat16 (``bf16``) or float32; the shared encoder is
    loaded again on both sides, since it is built once per process."""
    before = os.environ.get("STREAMFUSE_BF16")
    os.environ["STREAMFUSE_BF16"] = "1" if bf16 else "0"
    reset_encoder()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("STREAMFUSE_BF16", None)
        else:
            os.environ["STREAMFUSE_BF16"] = before
        reset_encoder()


def batch_shift(adapter: Any, texts: Sequence[str]) -> dict[str, float]:
    """The largest change of any probability between a text predicted alone and in a batch of
    ``BATCH`` (texts in their given order), and how many labels differ."""
    batched = np.vstack([adapter.predict_proba(texts[a : a + BATCH]) for a in range(0, len(texts), BATCH)])
    alone = np.vstack([adapter.predict_proba([t]) for t in texts])
    return {
        "max_prob_shift": float(np.abs(batched - alone).max()),
        "labels_differ": int((batched.argmax(1) != alone.argmax(1)).sum()),
        "n": len(texts),
    }


def compare(model_id: str) -> dict[str, Any]:
    """float32 against bfloat16 for one model (see the module docstring)."""
    out: dict[str, Any] = {"model": model_id}
    spec = Registry.load(include_test=True, include_unserved=True).get(model_id)
    for name, bf16 in (("float32", False), ("bfloat16", True)):
        with precision(bf16):
            adapter = build_adapter(spec)
            metrics = evaluate(model_id, write=False, latency=False, adapter=adapter)["metrics"]
            out[name] = next(metrics[k] for k in SCORES if k in metrics)
            if hasattr(adapter, "predict_proba") and not hasattr(adapter, "predict_embeddings"):
                texts = next(iter(RECIPES[model_id].tests.values()))().texts
                out[f"{name}_batch"] = batch_shift(adapter, texts)
    out["test_set"] = metrics.get("test_set")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m models.precision ID [ID ...]``."""
    parser = argparse.ArgumentParser(prog="python -m models.precision", description=__doc__)
    parser.add_argument("models", nargs="+", help="model ids (torch models: minilm-*, lora-*)")
    args = parser.parse_args(argv)
    unknown = [m for m in args.models if m not in RECIPES]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    table = Table("model", "test set", "float32", "bfloat16", "batch shift fp32 / bf16", "labels differ")
    for model_id in args.models:
        r = compare(model_id)
        shift = labels = "-"
        if "float32_batch" in r:
            f, b = r["float32_batch"], r["bfloat16_batch"]
            shift = f"{f['max_prob_shift']:.1e} / {b['max_prob_shift']:.1e}"
            labels = f"{f['labels_differ']} / {b['labels_differ']} of {b['n']}"
        scores = f"{r['float32']:.4f}", f"{r['bfloat16']:.4f}"
        table.add_row(model_id, str(r["test_set"]), *scores, shift, labels)
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

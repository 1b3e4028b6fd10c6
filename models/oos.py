"""Out-of-scope detection for intent models whose head knows only the in-scope classes
(CLINC150): a text is ``oos`` when its top in-scope probability is below a threshold.

The threshold is chosen on the validation split only, as the issue's bar reads: the
highest in-scope accuracy among the thresholds whose out-of-scope recall reaches
:data:`MIN_OOS_RECALL`. ``python -m models.oos MODEL...`` applies the rule to a trained
artifact again (it rescores validation with the committed weights and rewrites the
threshold in ``model.json``), so a rule change needs no retraining; ``streamfuse train``
applies the same function to a new model.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

# The bar asks for 0.50 on the test split. Validation holds only 100 oos texts, and under
# the previous rule the test recall ran 0.07 below validation (0.806 against 0.88), so
# the rule asks validation for a margin of 0.20.
MIN_OOS_RECALL = 0.70

OOS_RULE = (
    "label oos when max in-scope probability < oos_threshold; the threshold has the highest "
    "in-scope accuracy on the validation split among those whose validation oos recall is at "
    "least {min_recall}"
)

_GRID = np.round(np.linspace(0.0, 0.99, 100), 4)


def tune_threshold(
    probs: np.ndarray, gold: Sequence[str], labels: Sequence[str], min_oos_recall: float = MIN_OOS_RECALL
) -> float:
    """The max-probability threshold with the best in-scope accuracy whose oos recall is at
    least ``min_oos_recall`` (ties: the higher recall); the highest-recall threshold when
    none reaches it.

    ``probs`` are in-scope probabilities over ``labels``, one row per text of ``gold``.
    """
    gold_arr = np.asarray(gold)
    is_oos = gold_arr == "oos"
    correct_in = (np.asarray(labels)[probs.argmax(1)] == gold_arr) & ~is_oos
    top = probs.max(1)
    n_in, n_oos = max(1, int((~is_oos).sum())), max(1, int(is_oos.sum()))
    rows = []
    for t in _GRID:
        in_acc = float((correct_in & (top >= t)).sum() / n_in)
        recall = float((is_oos & (top < t)).sum() / n_oos)
        rows.append((recall >= min_oos_recall, in_acc, recall, -t))
    if not any(ok for ok, *_ in rows):  # rank by recall alone
        rows = [(True, r, a, nt) for _, a, r, nt in rows]
    best = max(rows)
    return float(-best[3])


def retune(model_id: str, min_oos_recall: float = MIN_OOS_RECALL) -> float:
    """Apply the rule to the trained artifact ``model_id`` and rewrite its threshold."""
    from models import data
    from models.adapters import build_adapter
    from models.adapters._common import artifact_dir
    from models.artifacts_io import read_config, write_config
    from models.registry import Registry

    spec = Registry.load().get(model_id)
    adapter = build_adapter(spec)
    val = data.clinc150("validation")
    if hasattr(adapter, "predict_proba"):
        probs = adapter.predict_proba(val.texts)
    else:  # a head on the shared encoder
        probs = adapter.predict_proba_embeddings(adapter.encoder.encode(val.texts))
    threshold = tune_threshold(probs, val.labels, adapter.head_labels, min_oos_recall)
    directory = artifact_dir(spec)
    config = read_config(directory)
    config["oos_threshold"] = threshold
    meta = config["metadata"]
    meta["oos_rule"] = OOS_RULE.format(min_recall=min_oos_recall)
    if isinstance(meta.get("hparams"), dict):  # as `streamfuse train` would record it now
        meta["hparams"].pop("oos_weight", None)
        meta["hparams"]["min_oos_recall"] = min_oos_recall
    write_config(directory, config)
    return threshold


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m models.oos MODEL...``: rewrite each model's oos threshold by the rule."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="CLINC150 model ids, e.g. lora-clinc150")
    args = parser.parse_args(argv)
    for model_id in args.models:
        print(f"{model_id}: oos_threshold {retune(model_id)}")


if __name__ == "__main__":
    main()

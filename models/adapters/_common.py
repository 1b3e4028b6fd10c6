"""Helpers shared by the adapters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.base import ModelOutput
from models.registry import ModelSpec


def artifact_dir(spec: ModelSpec) -> Path:
    """The spec's artifact folder; raises a clear error for specs without one."""
    path = spec.artifact_path()
    if path is None:
        raise ValueError(f"model {spec.id!r} needs an artifact but its spec has none")
    return path


def outputs_from_probs(probs: np.ndarray, labels: list[str]) -> list[ModelOutput]:
    """One :class:`ModelOutput` per row of ``probs`` (argmax label, its probability,
    and the whole distribution)."""
    best = probs.argmax(axis=1)
    out = []
    for row, k in zip(probs, best, strict=True):
        out.append(
            ModelOutput(
                label=labels[int(k)],
                score=float(row[k]),
                probs={lab: float(p) for lab, p in zip(labels, row, strict=True)},
            )
        )
    return out


OOS_LABEL = "oos"


def outputs_with_oos(probs: np.ndarray, head_labels: list[str], threshold: float) -> list[ModelOutput]:
    """Outputs over ``head_labels + ["oos"]`` where ``oos`` wins exactly when the top
    in-scope probability is below the threshold ``t``.

    p(oos) = min(1, c * (1 - top)) with c = t / ((1 + t)(1 - t)); the in-scope
    probabilities are scaled by 1 - p(oos), so the distribution still sums to one
    and its argmax agrees with the threshold rule.
    """
    thr = min(max(threshold, 1e-6), 1 - 1e-6)
    c = thr / ((1.0 + thr) * (1.0 - thr))
    top = probs.max(axis=1)
    p_oos = np.minimum(1.0, c * (1.0 - top))
    full = np.concatenate([probs * (1.0 - p_oos)[:, None], p_oos[:, None]], axis=1)
    outputs = outputs_from_probs(full, [*head_labels, OOS_LABEL])
    for out, t in zip(outputs, top, strict=True):
        out.extra["max_in_scope"] = float(t)
    return outputs

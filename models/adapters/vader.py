"""VADER lexicon sentiment as a cheap ensemble member.

VADER gives a ``compound`` score c in [-1, 1]. It becomes a distribution as follows
(``a`` = scale, ``t`` = neutral threshold, both stored in the artifact or params):

- label set ``sentiment`` (negative, positive): p(positive) = sigmoid(a * (c - t)),
  with t an offset (0 by default).
- label set ``fin_sentiment`` (negative, neutral, positive): softmax over the logits
  ``[-a*c, a*(2t - |c|), a*c]``. The argmax is VADER's own rule (positive when c > t,
  negative when c < -t, neutral between), and confidence grows with the distance from
  the thresholds; ``a`` sets how fast.

Training fits ``t`` and ``a`` on the training split (accuracy for ``t``, NLL for ``a``);
without an artifact VADER's published defaults (t = 0.05, a = 5) are used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.adapters._common import outputs_from_probs
from models.artifacts_io import read_config
from models.base import ModelOutput
from models.registry import ModelSpec

LABEL_SETS = {
    "fin_sentiment": ["negative", "neutral", "positive"],
    "sentiment": ["negative", "positive"],
}
DEFAULTS = {
    "fin_sentiment": {"threshold": 0.05, "scale": 5.0},
    "sentiment": {"threshold": 0.0, "scale": 5.0},
}


def compound_to_probs(compound: np.ndarray, label_set: str, threshold: float, scale: float) -> np.ndarray:
    """Map VADER compound scores to probabilities over ``LABEL_SETS[label_set]``."""
    c = np.asarray(compound, dtype=np.float64)
    if label_set == "sentiment":
        p_pos = 1.0 / (1.0 + np.exp(-scale * (c - threshold)))
        return np.stack([1.0 - p_pos, p_pos], axis=1)
    if label_set == "fin_sentiment":
        logits = np.stack([-scale * c, scale * (2 * threshold - np.abs(c)), scale * c], axis=1)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(f"unknown VADER label set {label_set!r}; expected one of {list(LABEL_SETS)}")


class VaderAdapter:
    """VADER sentiment over a configurable label set."""

    backbone: str | None = None

    def __init__(self, spec: ModelSpec):
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.model_id = spec.id
        self.task = spec.task
        self.label_set = str(spec.params.get("label_set", "fin_sentiment"))
        if self.label_set not in LABEL_SETS:
            raise ValueError(f"{spec.id}: unknown label_set {self.label_set!r}")
        self.labels = list(LABEL_SETS[self.label_set])
        cfg = dict(DEFAULTS[self.label_set])
        path = spec.artifact_path()
        if path is not None:
            cfg.update(read_config(path).get("calibration", {}))
        cfg.update({k: spec.params[k] for k in ("threshold", "scale") if k in spec.params})
        self.threshold = float(cfg["threshold"])
        self.scale = float(cfg["scale"])
        self._analyzer = SentimentIntensityAnalyzer()

    def compound(self, texts: Sequence[str]) -> np.ndarray:
        """VADER's compound score for each text."""
        return np.array([self._analyzer.polarity_scores(t)["compound"] for t in texts], dtype=np.float64)

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Predict a batch; one output per text, in order (``extra["compound"]`` keeps
        VADER's raw score)."""
        if not texts:
            return []
        compound = self.compound(texts)
        probs = compound_to_probs(compound, self.label_set, self.threshold, self.scale)
        outputs = outputs_from_probs(probs, self.labels)
        for out, c in zip(outputs, compound, strict=True):
            out.extra["compound"] = float(c)
        return outputs

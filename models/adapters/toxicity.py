"""Two toxicity (offensive-language) models of different cost, both pickle-free at run time.

- :class:`ToxicitySvmAdapter` (``toxicity-svm``): alt-profanity-check's TF-IDF + linear SVM
  ensemble with sigmoid calibration, converted once at build time to JSON + safetensors by
  ``python -m models.lexicon_import toxicity-svm``. p(toxic) is the mean over the ensemble's
  folds k of ``1 / (1 + exp(a_k * s_k + b_k))`` with ``s_k`` fold k's SVM score: exactly
  scikit-learn's ``CalibratedClassifierCV.predict_proba``.
- :class:`WordListAdapter` (``toxicity-words``): better-profanity's word list with its
  leetspeak character map; a text is toxic when a whole word (or listed phrase) matches.
  A word list has no distribution, so its outputs carry no ``probs`` (fusion counts them
  as one-hot votes) and its ``score`` is 1.0.

Both say ``clean`` or ``toxic`` (see :data:`LABELS`). Neither has been scored for accuracy
here: there is no labelled toxicity data set in the project's data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from models.adapters._common import artifact_dir, outputs_from_probs
from models.adapters.tfidf_linear import TfidfFeaturizer
from models.artifacts_io import read_config, read_tensors
from models.base import ModelOutput
from models.registry import ModelSpec

LABELS = ["clean", "toxic"]
# better-profanity's word characters (letters and digits of any script, plus these marks)
_WORD = re.compile(r"(?:[^\W_]|[@$*'\"])+")


class ToxicitySvmAdapter:
    """TF-IDF + calibrated linear SVM folds (converted from alt-profanity-check)."""

    backbone: str | None = None

    def __init__(self, spec: ModelSpec):
        directory = artifact_dir(spec)
        config = read_config(directory)
        t = read_tensors(directory)
        self.model_id, self.task = spec.id, spec.task
        self.labels: list[str] = list(config["labels"])
        self.featurizer = TfidfFeaturizer(config["vocabulary"], t["idf"], config["vectorizer"])
        self.coef_t = np.ascontiguousarray(t["coef"].astype(np.float64).T)  # V x folds
        self.intercept = t["intercept"].astype(np.float64)  # folds
        self.sig_a = t["sigmoid_a"].astype(np.float64)
        self.sig_b = t["sigmoid_b"].astype(np.float64)

    def p_toxic(self, texts: Sequence[str]) -> np.ndarray:
        """p(toxic) for each text, as scikit-learn's calibrated ensemble computes it."""
        scores = np.asarray(self.featurizer.transform(texts) @ self.coef_t) + self.intercept
        return (1.0 / (1.0 + np.exp(self.sig_a * scores + self.sig_b))).mean(axis=1)

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Predict a batch; one output per text, in order."""
        if not texts:
            return []
        p = self.p_toxic(texts)
        return outputs_from_probs(np.stack([1.0 - p, p], axis=1), self.labels)


def _char_class(ch: str, mapping: Mapping[str, Sequence[str]]) -> str:
    options = mapping.get(ch, (ch,))
    return "(?:" + "|".join(re.escape(o) for o in options) + ")"


class WordMatcher:
    """Whole-word matching of a word list with per-character substitutions (pure)."""

    def __init__(self, words: Sequence[str], char_mapping: Mapping[str, Sequence[str]]):
        self.singles = {w.lower() for w in words if " " not in w}
        self.phrases = {" ".join(w.lower().split()) for w in words if " " in w}
        self.max_phrase = max((len(p.split()) for p in self.phrases), default=1)
        self.mapping = {k: tuple(v) for k, v in char_mapping.items()}
        by_len: dict[int, list[str]] = {}
        for w in sorted(self.singles):
            by_len.setdefault(len(w), []).append("".join(_char_class(c, self.mapping) for c in w))
        # one alternation per word length: a token is only tried against words it could be
        self._variants = {n: re.compile("|".join(p)) for n, p in by_len.items()}

    def tokens(self, text: str) -> list[str]:
        """The text's words, lower-cased, quotes stripped from their ends."""
        return [t.strip("'\"") for t in _WORD.findall(text.lower()) if t.strip("'\"")]

    def word_matches(self, token: str) -> bool:
        """Does one token equal a listed word or one of its substitution variants?"""
        if token in self.singles:
            return True
        pattern = self._variants.get(len(token))
        return pattern is not None and pattern.fullmatch(token) is not None

    def matches(self, text: str) -> list[str]:
        """The listed words and phrases found in ``text`` (in order, repeats kept)."""
        toks = self.tokens(text)
        found = [t for t in toks if self.word_matches(t)]
        for n in range(2, self.max_phrase + 1):
            found.extend(
                g for i in range(len(toks) - n + 1) if (g := " ".join(toks[i : i + n])) in self.phrases
            )
        return found


class WordListAdapter:
    """Toxic when a listed word or phrase occurs; no probabilities (a yes/no rule)."""

    backbone: str | None = None

    def __init__(self, spec: ModelSpec):
        config = read_config(artifact_dir(spec))
        self.model_id, self.task = spec.id, spec.task
        self.labels: list[str] = list(config["labels"])
        self.matcher = WordMatcher(config["words"], config["char_mapping"])

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Predict a batch; ``extra["matches"]`` lists what matched."""
        out = []
        for text in texts:
            found = self.matcher.matches(text)
            label = self.labels[1] if found else self.labels[0]
            out.append(ModelOutput(label=label, score=1.0, probs=None, extra={"matches": found[:10]}))
        return out

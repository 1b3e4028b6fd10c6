"""TF-IDF features + a linear classifier, re-implemented for inference without pickle.

Training (``models.train``) fits scikit-learn's ``TfidfVectorizer`` and a linear model,
then :func:`export_tfidf_linear` stores what inference needs in safe formats:

- ``model.json``: labels, the vectorizer's settings, the vocabulary (terms in column
  order), the temperature fit on the validation split, metadata;
- ``weights.safetensors``: ``idf`` (V), ``coef`` (classes x V), ``intercept`` (classes).

:class:`TfidfFeaturizer` reproduces scikit-learn's word analyzer (lowercasing, the token
regex, word n-grams), sublinear tf, idf weighting and L2 normalisation, so
``X @ coef.T + intercept`` equals the scikit-learn decision function. A binary model's
single score ``s`` is stored as the two rows ``[-w/2, w/2]``, so a softmax over both
classes equals sigmoid(s).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from models.adapters._common import artifact_dir, outputs_from_probs
from models.artifacts_io import read_config, read_tensors, write_artifact
from models.base import ModelOutput
from models.calibration import softmax
from models.registry import ModelSpec

# The TfidfVectorizer settings this re-implementation supports (others are refused at
# export time rather than silently diverging at inference).
SUPPORTED = {"analyzer": "word", "strip_accents": None, "stop_words": None, "binary": False}


class TfidfFeaturizer:
    """scikit-learn's TF-IDF word features, in numpy/scipy."""

    def __init__(self, vocabulary: list[str], idf: np.ndarray, settings: dict[str, Any]):
        self.index = {term: i for i, term in enumerate(vocabulary)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self.lowercase = bool(settings.get("lowercase", True))
        self.token_re = re.compile(settings.get("token_pattern", r"(?u)\b\w\w+\b"))
        self.min_n, self.max_n = (int(x) for x in settings.get("ngram_range", (1, 1)))
        self.sublinear_tf = bool(settings.get("sublinear_tf", False))
        self.use_idf = bool(settings.get("use_idf", True))
        self.norm = settings.get("norm", "l2")

    def _terms(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        tokens = self.token_re.findall(text)
        if self.max_n == 1:
            return tokens
        terms = list(tokens) if self.min_n == 1 else []
        for n in range(max(self.min_n, 2), self.max_n + 1):
            terms.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        return terms

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF matrix (n x V), rows L2-normalised as scikit-learn does.

        The weights are computed on the arrays before one CSR matrix is built: scipy's
        sparse products cost far more than the arithmetic on batches of a few texts.
        """
        indptr = [0]
        indices: list[int] = []
        counts_out: list[int] = []
        for text in texts:
            counts: dict[int, int] = {}
            for term in self._terms(text):
                j = self.index.get(term)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            cols = sorted(counts)
            indices.extend(cols)
            counts_out.extend(counts[j] for j in cols)
            indptr.append(len(indices))
        cols_arr = np.asarray(indices, dtype=np.int64)
        data = np.asarray(counts_out, dtype=np.float64)
        if self.sublinear_tf:
            data = np.log(data) + 1.0
        if self.use_idf:
            data *= self.idf[cols_arr]
        if self.norm == "l2":
            starts = np.asarray(indptr, dtype=np.int64)
            lengths = np.diff(starts)
            filled = lengths > 0
            sq = np.zeros(len(texts))
            if data.size:
                sq[filled] = np.add.reduceat(data * data, starts[:-1][filled])
            scale = np.where(sq > 0, 1.0 / np.sqrt(np.where(sq > 0, sq, 1.0)), 1.0)
            data *= np.repeat(scale, lengths)
        elif self.norm is not None:
            raise ValueError(f"unsupported norm {self.norm!r}")
        return sp.csr_matrix((data, cols_arr, indptr), shape=(len(texts), len(self.idf)))


def export_tfidf_linear(
    directory: Path,
    vectorizer: Any,
    classifier: Any,
    temperature: float,
    metadata: dict[str, Any],
) -> None:
    """Store a fitted ``TfidfVectorizer`` + linear classifier as JSON + safetensors."""
    params = vectorizer.get_params()
    for key, value in SUPPORTED.items():
        if params.get(key) != value:
            raise ValueError(f"unsupported TfidfVectorizer setting {key}={params.get(key)!r}")
    if params.get("preprocessor") is not None or params.get("tokenizer") is not None:
        raise ValueError("custom preprocessors/tokenizers cannot be exported")
    vocab = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
    coef = np.asarray(classifier.coef_, dtype=np.float64)
    intercept = np.asarray(classifier.intercept_, dtype=np.float64).reshape(-1)
    labels = [str(c) for c in classifier.classes_]
    if coef.shape[0] == 1 and len(labels) == 2:  # binary: one score for classes_[1]
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    settings = {
        "lowercase": params["lowercase"],
        "token_pattern": params["token_pattern"],
        "ngram_range": list(params["ngram_range"]),
        "sublinear_tf": params["sublinear_tf"],
        "use_idf": params["use_idf"],
        "norm": params["norm"],
    }
    config = {
        "kind": "tfidf_linear",
        "labels": labels,
        "temperature": float(temperature),
        "vectorizer": settings,
        "classifier": type(classifier).__name__,
        "vocabulary": vocab,
        "metadata": metadata,
    }
    tensors = {
        "idf": np.asarray(vectorizer.idf_, dtype=np.float64),
        "coef": coef.astype(np.float32),
        "intercept": intercept.astype(np.float32),
    }
    write_artifact(directory, config, tensors)


class TfidfLinearAdapter:
    """TF-IDF + linear classifier with tempered-softmax probabilities."""

    backbone: str | None = None

    def __init__(self, spec: ModelSpec):
        directory = artifact_dir(spec)
        config = read_config(directory)
        tensors = read_tensors(directory)
        self.model_id = spec.id
        self.task = spec.task
        self.labels: list[str] = list(config["labels"])
        self.temperature = float(config.get("temperature", 1.0))
        self.featurizer = TfidfFeaturizer(config["vocabulary"], tensors["idf"], config["vectorizer"])
        # float64 for the dot product: the scores then match scikit-learn to ~1e-6.
        self.coef_t = np.ascontiguousarray(tensors["coef"].astype(np.float64).T)
        self.intercept = tensors["intercept"].astype(np.float64)

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """Raw linear scores (n x classes), before the temperature."""
        X = self.featurizer.transform(texts)
        return np.asarray(X @ self.coef_t) + self.intercept

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Predict a batch; one output per text, in order."""
        if not texts:
            return []
        probs = softmax(self.decision_function(texts), self.temperature)
        return outputs_from_probs(probs, self.labels)

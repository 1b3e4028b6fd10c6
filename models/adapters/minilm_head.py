"""A softmax (multinomial logistic-regression) head on the shared frozen MiniLM encoder.

Artifact: ``weights.safetensors`` with ``W`` (classes x 384) and ``b`` (classes), and
``model.json`` with the labels, the temperature fit on the validation split and the
training metadata. Optional out-of-scope detection (``oos_threshold`` in the config):
when the top in-scope probability is below the threshold the label becomes ``oos``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.adapters._common import OOS_LABEL, artifact_dir, outputs_from_probs, outputs_with_oos
from models.artifacts_io import read_config, read_tensors
from models.base import ModelOutput
from models.calibration import softmax
from models.registry import ModelSpec


class MiniLMHeadAdapter:
    """Frozen MiniLM embeddings -> linear head -> tempered softmax."""

    backbone: str | None = "minilm"

    def __init__(self, spec: ModelSpec):
        directory = artifact_dir(spec)
        config = read_config(directory)
        tensors = read_tensors(directory)
        self.model_id = spec.id
        self.task = spec.task
        self.head_labels: list[str] = list(config["labels"])  # the classes W scores
        self.W = tensors["W"].astype(np.float32)
        self.b = tensors["b"].astype(np.float32)
        self.temperature = float(config.get("temperature", 1.0))
        threshold = spec.params.get("oos_threshold", config.get("oos_threshold"))
        self.oos_threshold: float | None = None if threshold is None else float(threshold)
        self.labels = list(self.head_labels)
        if self.oos_threshold is not None and OOS_LABEL not in self.labels:
            self.labels.append(OOS_LABEL)
        if self.W.shape[0] != len(self.head_labels) or self.b.shape != (len(self.head_labels),):
            raise ValueError(f"{spec.id}: weights do not match {len(self.head_labels)} labels")
        self._encoder = None

    @property
    def encoder(self):
        """The process-wide MiniLM encoder (loaded on first use, shared by all heads)."""
        if self._encoder is None:
            from models.encoder import get_encoder

            self._encoder = get_encoder()
        return self._encoder

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Encode and classify a batch; one output per text, in order."""
        if not texts:
            return []
        return self.predict_embeddings(self.encoder.encode(texts))

    def predict_proba_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """Calibrated probabilities over ``head_labels`` for precomputed embeddings."""
        logits = np.asarray(embeddings, dtype=np.float32) @ self.W.T + self.b
        return softmax(logits, self.temperature)

    def predict_embeddings(self, embeddings: np.ndarray) -> list[ModelOutput]:
        """Classify precomputed (normalised) MiniLM embeddings, one row per text; lets a
        co-scheduler run one encoder pass for every head on the backbone."""
        probs = self.predict_proba_embeddings(embeddings)
        if self.oos_threshold is None:
            return outputs_from_probs(probs, self.labels)
        return self._with_oos(probs)

    def _with_oos(self, probs: np.ndarray) -> list[ModelOutput]:
        """Add ``oos`` to the distribution (see :func:`outputs_with_oos`)."""
        return outputs_with_oos(probs, self.head_labels, self.oos_threshold or 0.0)

"""A packaged encoder fine-tuned with LoRA adapters (see :mod:`models.lora`): a sentence
classifier (``head: sequence``) or a CoNLL-style named-entity tagger (``head: token``).

The artifact holds only the LoRA matrices and the head (safetensors) and ``model.json``;
the base weights come from the packaged encoder its config names (``base``: all-MiniLM-L6-v2
unless it says ``mpnet``, see :mod:`models.bases`), loaded offline, and the LoRA update is
merged into them at load time. These models cannot share the frozen encoder's
pass (their weights differ), so their ``backbone`` is None.

On CPU the merged model's ``nn.Linear`` layers can be quantised to int8 (dynamic,
per-channel; ``models.encoder.int8_lora_enabled``): faster, off by default.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.adapters._common import OOS_LABEL, artifact_dir, outputs_from_probs, outputs_with_oos
from models.artifacts_io import read_config, read_tensors
from models.base import Entity, ModelOutput
from models.calibration import softmax
from models.registry import ModelSpec


class _LoraBase:
    backbone: str | None = None

    def __init__(self, spec: ModelSpec):
        import torch

        from models import lora
        from models.encoder import (
            bf16_enabled,
            configure_threads,
            int8_lora_enabled,
            select_device,
        )

        configure_threads()
        directory = artifact_dir(spec)
        self.config = read_config(directory)
        self.model_id = spec.id
        self.task = spec.task
        self.temperature = float(self.config.get("temperature", 1.0))
        self.max_length = int(self.config.get("max_length", 128))
        self.device = torch.device(select_device())
        self.tokenizer = lora.load_tokenizer(lora.base_of(self.config))
        self.tensors = read_tensors(directory)
        self.int8 = int8_lora_enabled(self.device, str(self.config.get("head", "sequence")))
        self.bf16 = not self.int8 and bf16_enabled(self.device)
        self._model = None
        # The infer stage calls predict from worker threads; a fast tokenizer must not be
        # used from two threads at once, and one forward at a time uses the cores best.
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        # The head's weights, for rows computed in a shared pass (models.shared_pass).
        self.head_w = torch.from_numpy(self.tensors["head.W"].copy())
        self.head_b = torch.from_numpy(self.tensors["head.b"].copy())

    @property
    def model(self):
        """The merged model, built on first use: an infer worker that computes this model in
        the shared pass (``models.shared_pass``) never builds it."""
        if self._model is None:
            from models import lora
            from models.encoder import quantize_int8, to_bf16

            with self._load_lock:
                if self._model is None:
                    model = lora.load_model(self.config, self.tensors).to(self.device)
                    if self.int8:
                        model = quantize_int8(model)
                    elif self.bf16:
                        model = to_bf16(model)
                    self._model = model
        return self._model

    def lora_deltas(self):
        """This model's LoRA updates for a shared pass (``models.shared_pass``)."""
        from models.lora import base_of
        from models.shared_pass import BASE, deltas_from_tensors

        if self.config.get("kind") != "minilm_lora" or base_of(self.config) != BASE:
            raise ValueError(f"{self.model_id} is not a LoRA model on MiniLM: it cannot share its pass")
        return deltas_from_tensors(self.config, self.tensors)


class LoraClassifierAdapter(_LoraBase):
    """LoRA-tuned MiniLM -> mean pooling -> linear head -> tempered softmax; with
    ``oos_threshold`` in the config (CLINC150), ``oos`` when the top in-scope probability
    is below it, as for the frozen-encoder heads."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.head_labels: list[str] = list(self.config["labels"])  # the classes the head scores
        threshold = spec.params.get("oos_threshold", self.config.get("oos_threshold"))
        self.oos_threshold: float | None = None if threshold is None else float(threshold)
        self.labels: list[str] = list(self.head_labels)
        if self.oos_threshold is not None and OOS_LABEL not in self.labels:
            self.labels.append(OOS_LABEL)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        from models.lora import predict_sequence_logits

        with self._lock:
            logits = predict_sequence_logits(
                self.model, self.tokenizer, list(texts), self.max_length, self.device, batch_size=32
            )
        return softmax(logits, self.temperature)

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        if not texts:
            return []
        return self._outputs(self.predict_proba(texts))

    def _outputs(self, probs: np.ndarray) -> list[ModelOutput]:
        if self.oos_threshold is None:
            return outputs_from_probs(probs, self.labels)
        return outputs_with_oos(probs, self.head_labels, self.oos_threshold)

    def pass_rows(self, texts: Sequence[str]) -> tuple[list[list[int]], None]:
        """Token ids, one row per text, for a shared pass."""
        with self._lock:
            ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        return ids, None

    def outputs_from_states(
        self, texts: Sequence[str], state: None, states: Sequence[Any]
    ) -> list[ModelOutput]:
        """Mean pooling over each row's hidden states, the head, the tempered softmax."""
        from models.shared_pass import mean_pool

        logits = (mean_pool(states) @ self.head_w.T + self.head_b).numpy()
        return self._outputs(softmax(logits, self.temperature))


class LoraNerAdapter(_LoraBase):
    """LoRA-tuned MiniLM token classifier over IOB2 tags; returns entity spans with
    character offsets into the input text."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.tags: list[str] = list(self.config["tags"])
        self.tag_index = {t: k for k, t in enumerate(self.tags)}
        self.labels: list[str] = list(self.config["labels"])  # entity types

    def predict_word_probs(self, words: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Calibrated tag probabilities per word (first sub-token), per sentence."""
        from models.lora import predict_word_logits

        with self._lock:
            logits = predict_word_logits(
                self.model, self.tokenizer, words, self.max_length, self.device, batch_size=32
            )
        return [softmax(s, self.temperature) if len(s) else s for s in logits]

    def predict_tags(self, words: Sequence[Sequence[str]]) -> list[list[str]]:
        """IOB2 tags for pre-split sentences (the most probable valid IOB2 sequence)."""
        from models.lora import decode_iob

        return [decode_iob(p, self.tags) for p in self.predict_word_probs(words)]

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        from models.lora import split_words

        if not texts:
            return []
        splits = [split_words(t) for t in texts]
        nonempty = [i for i, s in enumerate(splits) if s]
        probs = self.predict_word_probs([[w for w, _, _ in splits[i]] for i in nonempty])
        return self._entities(texts, splits, dict(zip(nonempty, probs, strict=True)))

    def pass_rows(self, texts: Sequence[str]) -> tuple[list[list[int]], tuple]:
        """Token ids for a shared pass: one row per text with words (none for the rest),
        and what :meth:`outputs_from_states` needs: the words, their shapes, the index of
        each word's first sub-token."""
        from models.lora import split_words, word_positions

        splits = [split_words(t) for t in texts]
        nonempty = [i for i, s in enumerate(splits) if s]
        if not nonempty:
            return [], (splits, nonempty, [], [])
        words = [[w for w, _, _ in splits[i]] for i in nonempty]
        with self._lock:
            enc = self.tokenizer(words, is_split_into_words=True, truncation=True, max_length=self.max_length)
        positions = [word_positions(ws, enc.word_ids(k)) for k, ws in enumerate(words)]
        shapes = [p[0] for p in positions]
        firsts = [p[1] for p in positions]
        return enc["input_ids"], (splits, nonempty, shapes, firsts)

    def outputs_from_states(
        self, texts: Sequence[str], state: tuple, states: Sequence[Any]
    ) -> list[ModelOutput]:
        """Each sub-token's state and its word's shape embedding, the head, the tempered
        softmax at each word's first sub-token, then the spans (as :meth:`predict`)."""
        import torch

        splits, nonempty, shapes, firsts = state
        shape_emb = torch.from_numpy(self.tensors["head.shape_emb"])
        by_text: dict[int, np.ndarray] = {}
        for i, hidden, shape, first in zip(nonempty, states, shapes, firsts, strict=True):
            feats = torch.cat([hidden, shape_emb[torch.as_tensor(shape)]], dim=-1)
            logits = (feats @ self.head_w.T + self.head_b).numpy()
            rows = np.zeros((len(first), logits.shape[1]), np.float32)
            for w, j in enumerate(first):
                if j >= 0:
                    rows[w] = logits[j]
            by_text[i] = softmax(rows, self.temperature)
        return self._entities(texts, splits, by_text)

    def _entities(
        self, texts: Sequence[str], splits: list, by_text: dict[int, np.ndarray]
    ) -> list[ModelOutput]:
        from models.lora import decode_iob, iob_to_spans

        outputs = []
        for i, text in enumerate(texts):
            entities: list[Entity] = []
            p = by_text.get(i)
            if p is not None:
                words = splits[i]
                tags = decode_iob(p, self.tags)
                for typ, a, b in iob_to_spans(tags):
                    start, end = words[a][1], words[b - 1][2]
                    score = float(np.mean([p[j, self.tag_index[tags[j]]] for j in range(a, b)]))
                    entities.append(Entity(text=text[start:end], type=typ, start=start, end=end, score=score))
            score = float(np.mean([e.score for e in entities])) if entities else 1.0
            outputs.append(ModelOutput(label=None, score=min(1.0, score), probs=None, entities=entities))
        return outputs


def build(spec: ModelSpec):
    """The adapter the artifact's ``head`` asks for."""
    head = read_config(artifact_dir(spec)).get("head")
    if head == "token":
        return LoraNerAdapter(spec)
    return LoraClassifierAdapter(spec)

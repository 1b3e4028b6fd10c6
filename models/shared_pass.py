"""One forward pass of the base encoder for several models on it: multi-LoRA batching.

The LoRA models on MiniLM and the frozen heads on the backbone all run the same network
with different weights in the linear layers only (a LoRA model's are the base's plus its
low-rank update). So their rows can share one batch: embeddings, attention, layer norms
and activations run once over every row, and each linear layer multiplies each model's
rows by that model's weight (:class:`GroupedLinear`; a frozen head's rows by the base's).
This is how multi-LoRA servers (S-LoRA, Punica, vLLM) batch across adapters; they keep the
update apart (``x·Wᵀ + s·(x·Aᵀ)·Bᵀ``), while this keeps each model's merged weight (36
layers, 42 MB per model), so that each row's arithmetic is that of its model alone.

Measured here (README, Performance): it saves broker requests (one topic and consumer for
all of them instead of one per model) but not compute: in the A/B at 75 msg/s infer used
more CPU with it and p99 was no better, so the
``share_base`` setting that routes to it is off. On a GPU, where small batches waste
most of the device, this is where it would pay; that is not measured.

Results are each model's own: a chunk's padding differs from the model's own batches,
which moves float32 probabilities by about 1e-6 (``tests/unit/models/test_shared_pass.py``
checks it on the trained artifacts).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from models.base import ModelOutput

BASE = "minilm"  # the one base shared this way: the backbone's, all-MiniLM-L6-v2
PEFT_PREFIX = "base_model.model."
CHUNK = 32  # rows per forward; the LoRA models' own batch size


@dataclass(frozen=True, slots=True)
class Delta:
    """One module's LoRA update: ``s·B·A`` is added to the base weight."""

    a: torch.Tensor  # (r, in)
    b: torch.Tensor  # (out, r)
    scale: float

    def merged(self, weight: torch.Tensor) -> torch.Tensor:
        """``weight + s·B·A``, computed as peft's ``merge_and_unload`` does."""
        return weight + (self.b.to(weight.dtype) @ self.a.to(weight.dtype)) * self.scale


def deltas_from_tensors(config: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> dict[str, Delta]:
    """A LoRA artifact's updates by module name in the plain base model.

    ``tensors`` holds the peft state dict under ``lora.`` (``models.lora.lora_tensors``);
    the scale is ``lora_alpha / r``, peft's for a plain LoRA config.
    """
    lora = config["lora"]
    scale = float(lora["lora_alpha"]) / float(lora["r"])
    parts: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        if not key.startswith("lora."):
            continue
        name = key[len("lora.") :]
        name = name[len(PEFT_PREFIX) :] if name.startswith(PEFT_PREFIX) else name
        module, _, which = name.rpartition(".lora_")
        parts.setdefault(module, {})[which.split(".")[0]] = value
    out: dict[str, Delta] = {}
    for module, ab in parts.items():
        if set(ab) != {"A", "B"}:
            raise ValueError(f"LoRA weights for {module} lack A or B: {sorted(ab)}")
        out[module] = Delta(torch.from_numpy(ab["A"].copy()), torch.from_numpy(ab["B"].copy()), scale)
    if not out:
        raise ValueError("no LoRA weights in the artifact")
    return out


class GroupedLinear(torch.nn.Module):
    """A base ``nn.Linear`` that multiplies each slice of a chunk's rows by its own model's
    weight (the base's, or the base's merged with that model's LoRA update).

    The chunk's slices come from the shared pass; outside a pass it is the base layer.
    """

    def __init__(self, base: torch.nn.Linear, slices: threading.local):
        super().__init__()
        self.base = base
        self.weights: dict[str, torch.Tensor] = {}
        self._slices = slices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slices = getattr(self._slices, "value", None)
        if not slices:
            return self.base(x)
        # One 2-D matrix of every token, each model's rows a contiguous block of it.
        n, length, width = x.shape
        flat = x.reshape(n * length, width)
        out = torch.empty((n * length, self.base.out_features), dtype=x.dtype, device=x.device)
        bias = self.base.bias
        for key, rows in slices:
            block = slice(rows.start * length, rows.stop * length)
            # A model that does not adapt this layer (or a frozen head's row) uses the base's.
            weight = self.weights.get(key, self.base.weight) if key else self.base.weight
            if bias is None:
                torch.mm(flat[block], weight.T, out=out[block])
            else:
                torch.addmm(bias, flat[block], weight.T, out=out[block])
        return out.view(n, length, -1)


class SharedBasePass:
    """The frozen base encoder shared by several LoRA models (see the module doc).

    ``add(key, deltas)`` registers a model: each adapted ``nn.Linear`` of the base becomes
    a :class:`GroupedLinear` that also holds the model's merged weight. ``hidden(rows)``
    runs rows, each a ``(key or None, token ids)`` pair, one pass per chunk, and returns
    each row's last hidden states. Every other layer (embeddings, attention, layer norms,
    activations) runs once over the whole chunk.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, device: torch.device, dtype: torch.dtype):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.pad_id = int(tokenizer.pad_token_id or 0)
        self.models: set[str] = set()
        self._slices = threading.local()  # the chunk's (model, rows) slices, per thread
        self._lock = threading.Lock()

    def add(self, key: str, deltas: Mapping[str, Delta]) -> None:
        """Register model ``key``'s updates (again for the same key: replaced)."""
        with self._lock, torch.inference_mode():
            modules = dict(self.model.named_modules())
            unknown = [m for m in deltas if not isinstance(modules.get(m), torch.nn.Linear | GroupedLinear)]
            if unknown:
                raise ValueError(f"{key}: LoRA modules not in the base model: {unknown[:3]}")
            for name, delta in deltas.items():
                layer = modules[name]
                if not isinstance(layer, GroupedLinear):
                    layer = GroupedLinear(layer, self._slices)
                    parent, _, attr = name.rpartition(".")
                    setattr(self.model.get_submodule(parent) if parent else self.model, attr, layer)
                layer.weights[key] = delta.merged(layer.base.weight.float()).to(self.device, self.dtype)
            self.models.add(key)

    def hidden(
        self, rows: Sequence[tuple[str | None, Sequence[int]]], chunk: int | None = None
    ) -> list[torch.Tensor]:
        """Each row's last hidden states, ``(len(ids), width)`` float32 on the CPU, in order.

        Rows are sorted by model, then by length: a model's rows fill whole chunks where it
        has enough of them (one weight per layer), each chunk pads little, and inside a chunk
        each model's rows are one slice.
        """
        unknown = {key for key, _ in rows if key is not None and key not in self.models}
        if unknown:
            raise KeyError(f"models {sorted(unknown)} are not registered with the shared pass")
        chunk = chunk or CHUNK
        out: list[torch.Tensor] = [torch.empty(0)] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: (rows[i][0] or "", len(rows[i][1])))
        with torch.inference_mode():
            for start in range(0, len(order), chunk):
                idx = sorted(order[start : start + chunk], key=lambda i: rows[i][0] or "")
                states = self._forward([rows[i] for i in idx])
                for k, i in enumerate(idx):
                    out[i] = states[k, : len(rows[i][1])]
        return out

    def _forward(self, rows: Sequence[tuple[str | None, Sequence[int]]]) -> torch.Tensor:
        width = max(len(ids) for _, ids in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, (_, row) in enumerate(rows):
            ids[k, : len(row)] = torch.as_tensor(row, dtype=torch.long)
            mask[k, : len(row)] = 1
        slices: list[tuple[str | None, slice]] = []
        for k, (key, _) in enumerate(rows):
            if slices and slices[-1][0] == key:
                slices[-1] = (key, slice(slices[-1][1].start, k + 1))
            else:
                slices.append((key, slice(k, k + 1)))
        self._slices.value = slices
        try:
            states = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        finally:
            self._slices.value = None
        return states.last_hidden_state.float().cpu()

    def embed_rows(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of ``texts`` as the shared encoder takes them (``models.encoder``)."""
        from models.encoder import MAX_LENGTH

        with self._lock:  # a fast tokenizer refuses concurrent calls; lanes share this one
            return self.tokenizer(list(texts), truncation=True, max_length=MAX_LENGTH)["input_ids"]


def mean_pool(states: Sequence[torch.Tensor]) -> torch.Tensor:
    """Each row's mean over its real tokens, ``(rows, width)``."""
    return torch.stack([s.mean(dim=0) for s in states])


class RowModel(Protocol):
    """A model that takes part in a shared pass: its rows in, its outputs out."""

    model_id: str

    def lora_deltas(self) -> dict[str, Delta]: ...

    def pass_rows(self, texts: Sequence[str]) -> tuple[list[list[int]], Any]: ...

    def outputs_from_states(
        self, texts: Sequence[str], state: Any, states: Sequence[torch.Tensor]
    ) -> list[ModelOutput]: ...


class HeadModel(Protocol):
    """A frozen-encoder head (or retrieval) that classifies normalised embeddings."""

    def predict_embeddings(self, embeddings: np.ndarray) -> list[ModelOutput]: ...


_instance: SharedBasePass | None = None
_instance_lock = threading.Lock()


def get_shared_pass() -> SharedBasePass:
    """The process-wide shared pass over the packaged MiniLM (loaded on first use).

    It holds its own copy of the base weights, float32 (bfloat16 on CPU where
    ``$STREAMFUSE_BF16`` asks for it, as the LoRA models would run); the int8 switches
    apply to models computed on their own.
    """
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = _load()
    return _instance


def _load() -> SharedBasePass:
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from models.bases import base_path
    from models.encoder import bf16_enabled, configure_threads, select_device
    from models.lora import load_tokenizer

    configure_threads()
    hf_logging.set_verbosity_error()
    device = torch.device(select_device())
    model = AutoModel.from_pretrained(str(base_path(BASE)), local_files_only=True, add_pooling_layer=False)
    model.eval()
    model.requires_grad_(False)
    dtype = torch.bfloat16 if bf16_enabled(device) else torch.float32
    model = model.to(device, dtype)
    return SharedBasePass(model, load_tokenizer(BASE), device, dtype)


def predict_shared(
    items: Sequence[tuple[str, str]],
    models: Mapping[str, RowModel | HeadModel],
    shared: SharedBasePass,
) -> list[ModelOutput]:
    """Outputs for ``(model id, text)`` items, in order, from one shared pass.

    Frozen heads (``predict_embeddings``) share one row per distinct text, embedded the
    way the shared encoder does (its tokenisation, mean pooling, L2 normalisation); each
    LoRA model (``pass_rows``) gets rows of its own: as many as it asks for (the tagger
    has none for a text without words).
    """
    by_model: dict[str, list[int]] = {}
    for i, (model_id, _) in enumerate(items):
        by_model.setdefault(model_id, []).append(i)
    rows: list[tuple[str | None, Sequence[int]]] = []
    plain = list(dict.fromkeys(t for m, t in items if not hasattr(models[m], "pass_rows")))
    if plain:
        rows += [(None, ids) for ids in shared.embed_rows(plain)]
    spans: dict[str, tuple[int, int, Any]] = {}
    for model_id, idx in by_model.items():
        model = models[model_id]
        if hasattr(model, "pass_rows"):
            if model_id not in shared.models:  # first batch with this model: register it
                shared.add(model_id, model.lora_deltas())  # type: ignore[union-attr]
            ids, state = model.pass_rows([items[i][1] for i in idx])  # type: ignore[union-attr]
            spans[model_id] = (len(rows), len(ids), state)
            rows += [(model_id, r) for r in ids]
    states = shared.hidden(rows)
    outputs: list[ModelOutput | None] = [None] * len(items)
    if plain:
        pooled = torch.nn.functional.normalize(mean_pool(states[: len(plain)]), p=2, dim=1).numpy()
        row_of = {t: k for k, t in enumerate(plain)}
    for model_id, idx in by_model.items():
        model = models[model_id]
        texts = [items[i][1] for i in idx]
        if model_id in spans:
            start, n, state = spans[model_id]
            outs = model.outputs_from_states(texts, state, states[start : start + n])  # type: ignore[union-attr]
        else:
            outs = model.predict_embeddings(pooled[[row_of[t] for t in texts]])  # type: ignore[union-attr]
        for i, out in zip(idx, outs, strict=True):
            outputs[i] = out
    return outputs  # type: ignore[return-value]

"""bfloat16 on CPU: the switch, and the committed LoRA classifier under it (the same labels as
float32, and how much a text's probabilities move with the batch it lands in)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.adapters import build_adapter
from models.encoder import bf16_enabled, to_bf16
from models.registry import Registry

TEXTS = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
    "The company said it will cut 120 jobs as sales fell sharply in the third quarter.",
    "The annual general meeting will be held in Helsinki on 5 April.",
    "Net sales decreased slightly.",
]


def test_bf16_is_cpu_only_and_off_unless_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMFUSE_BF16", raising=False)
    assert bf16_enabled("cpu") is False
    monkeypatch.setenv("STREAMFUSE_BF16", "1")
    assert bf16_enabled("cpu") is True
    assert bf16_enabled("cuda") is False  # the GPU runs fp16 instead


def test_to_bf16_converts_every_floating_weight() -> None:
    model = to_bf16(torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.LayerNorm(4)))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def _probs(adapter, texts: list[str]) -> np.ndarray:
    return np.array([[o.probs[k] for k in sorted(o.probs)] for o in adapter.predict(texts)])


def test_a_bf16_lora_classifier_agrees_with_float32_within_its_batch_noise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = Registry.load().get("lora-fin")
    monkeypatch.delenv("STREAMFUSE_BF16", raising=False)
    fp32 = _probs(build_adapter(spec), TEXTS)
    monkeypatch.setenv("STREAMFUSE_BF16", "1")
    adapter = build_adapter(spec)
    assert adapter.bf16 and next(adapter.model.parameters()).dtype == torch.bfloat16
    batch = _probs(adapter, TEXTS)
    assert (batch.argmax(1) == fp32.argmax(1)).all()
    assert np.abs(batch - fp32).max() < 0.05
    # A padded text's bf16 result moves a little with its batch (0.0097 at most on FPB test,
    # python -m models.precision; float32: 2e-6); the batch's longest text is not padded and
    # matches exactly.
    alone = np.vstack([_probs(adapter, [t]) for t in TEXTS])
    assert np.abs(alone - batch).max() < 0.02
    assert (alone.argmax(1) == batch.argmax(1)).all()
    longest = max(range(len(TEXTS)), key=lambda i: len(TEXTS[i]))
    assert np.abs(alone[longest] - batch[longest]).max() < 1e-6

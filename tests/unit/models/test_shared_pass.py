"""The shared MiniLM pass (multi-LoRA batching): each model's rows get its own weights, and
the committed models give the results they give alone."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from agents.infer import run_models
from models.adapters import build_adapter
from models.registry import ModelSpec, Registry, serving_group
from models.shared_pass import Delta, GroupedLinear, deltas_from_tensors, get_shared_pass, predict_shared

# --- pure parts ------------------------------------------------------------------------


def test_deltas_from_tensors_reads_peft_keys_and_scale() -> None:
    a, b = np.ones((2, 4), np.float32), np.full((3, 2), 0.5, np.float32)
    prefix = "lora.base_model.model.encoder.layer.0.attention.self.query"
    tensors = {f"{prefix}.lora_A.weight": a, f"{prefix}.lora_B.weight": b, "head.W": np.zeros((2, 4))}
    deltas = deltas_from_tensors({"lora": {"r": 2, "lora_alpha": 4}}, tensors)
    assert list(deltas) == ["encoder.layer.0.attention.self.query"]
    d = deltas["encoder.layer.0.attention.self.query"]
    assert d.scale == 2.0
    merged = d.merged(torch.zeros(3, 4))
    assert torch.allclose(merged, torch.full((3, 4), 2.0))  # (B @ A) * s = 0.5 * 2 * 2


def test_deltas_from_tensors_refuses_half_a_pair_and_nothing() -> None:
    with pytest.raises(ValueError, match="lack A or B"):
        deltas_from_tensors({"lora": {"r": 1, "lora_alpha": 1}}, {"lora.x.lora_A.weight": np.ones((1, 1))})
    with pytest.raises(ValueError, match="no LoRA weights"):
        deltas_from_tensors({"lora": {"r": 1, "lora_alpha": 1}}, {"head.W": np.ones((1, 1))})


def test_grouped_linear_multiplies_each_slice_by_its_models_weight() -> None:
    torch.manual_seed(0)
    base = torch.nn.Linear(4, 3)
    slices = threading.local()
    layer = GroupedLinear(base, slices)
    layer.weights["m"] = base.weight + 1.0
    x = torch.randn(5, 2, 4)
    with torch.inference_mode():
        assert torch.equal(layer(x), base(x))  # outside a pass: the base layer
        slices.value = [(None, slice(0, 2)), ("m", slice(2, 5))]
        y = layer(x)
    assert torch.allclose(y[:2], base(x[:2]))
    expected = torch.nn.functional.linear(x[2:], base.weight + 1.0, base.bias)
    assert torch.allclose(y[2:], expected)


def test_grouped_linear_gives_a_model_without_an_update_here_the_base_weight() -> None:
    torch.manual_seed(2)
    base = torch.nn.Linear(4, 3, bias=False)
    slices = threading.local()
    layer = GroupedLinear(base, slices)
    layer.weights["m"] = base.weight * 2.0
    x = torch.randn(3, 2, 4)
    with torch.inference_mode():
        slices.value = [("m", slice(0, 1)), ("other", slice(1, 3))]
        y = layer(x)
    assert torch.allclose(y[:1], 2.0 * base(x[:1]))
    assert torch.allclose(y[1:], base(x[1:]))  # "other" adapts other layers only


def test_delta_merge_matches_the_update_applied_apart() -> None:
    torch.manual_seed(1)
    w, a, b, x = torch.randn(6, 4), torch.randn(2, 4), torch.randn(6, 2), torch.randn(3, 4)
    d = Delta(a, b, 0.5)
    assert torch.allclose(x @ d.merged(w).T, x @ w.T + 0.5 * (x @ a.T) @ b.T, atol=1e-5)


def _spec(mid: str, adapter: str, backbone: str | None = None) -> ModelSpec:
    return ModelSpec(id=mid, task="t", kind="x", adapter=adapter, backbone=backbone)


def test_serving_group() -> None:
    head = _spec("h", "minilm_head", "minilm")
    lora, mpnet = _spec("l", "minilm_lora"), _spec("m", "mpnet_lora")
    assert serving_group(head) == "minilm" and serving_group(lora) == "minilm"
    assert serving_group(mpnet) is None  # another base
    assert serving_group(lora, share_base=False) is None and serving_group(head, share_base=False) == "minilm"
    assert serving_group(head, coschedule=False) is None and serving_group(lora, coschedule=False) is None


# --- the committed models --------------------------------------------------------------

GROUP = ["lora-fin", "lora-conll", "lora-sst2", "minilm-sst2", "minilm-banking77"]
TEXTS = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
    "German Chancellor Angela Merkel met Barack Obama in Washington on Tuesday.",
    "I still have not received my new card, what is going on?",
    "a dull, lifeless film.",
    "ok",
    "   ",
]


def _span(e) -> tuple:
    return (e.start, e.end, e.type)


@pytest.fixture(scope="module")
def adapters() -> dict:
    registry = Registry.load()
    if any(m not in registry for m in GROUP):
        pytest.skip("a model of the group is not trained here")
    return {m: build_adapter(registry.get(m)) for m in GROUP}


def test_shared_pass_gives_each_models_own_results(adapters: dict) -> None:
    """Every model's rows in one mixed pass: the labels, entities and probabilities each
    model gives on its own (float32; the update unmerged and the padding differ)."""
    items = [(m, t) for t in TEXTS for m in GROUP]
    shared = run_models(items, adapters, "minilm")
    assert get_shared_pass().models >= {"lora-fin", "lora-conll", "lora-sst2"}
    alone = {m: dict(zip(TEXTS, adapters[m].predict(TEXTS), strict=True)) for m in GROUP}
    for (m, t), out in zip(items, shared, strict=True):
        ref = alone[m][t]
        assert out.label == ref.label, (m, t)
        if ref.probs:
            assert max(abs(out.probs[k] - ref.probs[k]) for k in ref.probs) < 1e-4
        if ref.entities is not None:
            assert [_span(e) for e in out.entities] == [_span(e) for e in ref.entities]
            pairs = zip(out.entities, ref.entities, strict=True)
            assert all(math.isclose(a.score, b.score, abs_tol=1e-4) for a, b in pairs)
    fin = next(out for (m, t), out in zip(items, shared, strict=True) if m == "lora-conll" and "Merkel" in t)
    assert ("Angela Merkel", "PER") in {(e.text, e.type) for e in fin.entities}


def test_shared_pass_refuses_an_unregistered_model(adapters: dict) -> None:
    with pytest.raises(KeyError, match="not registered"):
        get_shared_pass().hidden([("no-such-model", [101, 102])])


def test_a_model_outside_the_group_is_refused(adapters: dict) -> None:
    with pytest.raises(KeyError, match="not in backbone"):
        run_models([("lora-clinc150", "hi")], adapters, "minilm")


def test_predict_shared_with_heads_only_embeds_like_the_shared_encoder(adapters: dict) -> None:
    heads = {m: adapters[m] for m in ("minilm-sst2", "minilm-banking77")}
    items = [(m, t) for t in TEXTS[:4] for m in heads]
    outs = predict_shared(items, heads, get_shared_pass())
    alone = run_models(items, heads, "minilm")  # heads only: the shared encoder's pass
    for a, b in zip(outs, alone, strict=True):
        assert a.label == b.label
        assert max(abs(a.probs[k] - b.probs[k]) for k in b.probs) < 1e-4

"""Every catalog model loads from its committed artifact and returns well-formed outputs."""

from __future__ import annotations

import math

import pytest

from models.adapters import ADAPTERS, build_adapter
from models.base import Adapter, ModelOutput
from models.registry import ModelSpec, Registry

TEXTS = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn a year earlier.",
    "$AAPL misses estimates; shares slide after hours",
    "I still have not received my new card, can you help?",
    "a gorgeous, witty, seductive movie.",
    "",
]

CATALOG_IDS = [s.id for s in Registry.load(include_test=True, include_unserved=True)]


def _check_output(out: ModelOutput, adapter: Adapter) -> None:
    assert isinstance(out, ModelOutput)
    assert 0.0 <= out.score <= 1.0 + 1e-9
    if out.probs is not None:
        assert set(out.probs) == set(adapter.labels)
        assert math.isclose(sum(out.probs.values()), 1.0, abs_tol=1e-4)
        assert all(0.0 <= p <= 1.0 + 1e-9 for p in out.probs.values())
        assert out.label == max(out.probs, key=out.probs.get)
        assert math.isclose(out.score, out.probs[out.label], abs_tol=1e-6)
    if out.label is not None and adapter.labels:  # no labels: an open set (kb article ids)
        assert out.label in adapter.labels


def test_catalog_is_not_empty() -> None:
    assert {"vader-fin", "tfidf-fin", "tfidf-domain", "tickers"} <= set(CATALOG_IDS)


@pytest.mark.parametrize("model_id", CATALOG_IDS)
def test_adapter_loads_and_predicts(registry: Registry, model_id: str) -> None:
    spec = registry.get(model_id)
    assert spec.adapter in ADAPTERS
    adapter = build_adapter(spec)
    assert isinstance(adapter, Adapter)
    assert adapter.model_id == spec.id
    assert adapter.task == spec.task
    assert list(adapter.labels) == list(spec.labels)
    outputs = adapter.predict(TEXTS)
    assert len(outputs) == len(TEXTS)
    for out in outputs:
        _check_output(out, adapter)
    assert adapter.predict([]) == []
    # Order is kept: predicting one text alone gives the same answer as in the batch.
    single = adapter.predict([TEXTS[1]])[0]
    assert single.label == outputs[1].label
    assert math.isclose(single.score, outputs[1].score, abs_tol=1e-4)


@pytest.mark.parametrize("model_id", [m for m in CATALOG_IDS if m.startswith("minilm-")])
def test_head_predict_embeddings_matches_predict(registry: Registry, model_id: str) -> None:
    from models.encoder import get_encoder

    adapter = build_adapter(registry.get(model_id))
    emb = get_encoder().encode(TEXTS)
    a = adapter.predict(TEXTS)
    b = adapter.predict_embeddings(emb)  # type: ignore[attr-defined]
    assert [o.label for o in a] == [o.label for o in b]


def test_heads_share_one_encoder(registry: Registry) -> None:
    heads = [build_adapter(s) for s in registry if s.adapter == "minilm_head"]
    if len(heads) < 2:
        pytest.skip("needs two MiniLM heads in the catalog")
    assert all(h.backbone == "minilm" for h in heads)
    assert heads[0].encoder is heads[1].encoder  # type: ignore[attr-defined]


def test_build_adapter_unknown_adapter() -> None:
    spec = ModelSpec(id="x", task="t", kind="test", adapter="nope")
    with pytest.raises(KeyError, match="unknown adapter"):
        build_adapter(spec)


def test_vader_probabilities_follow_compound() -> None:
    import numpy as np

    from models.adapters.vader import compound_to_probs

    c = np.array([-0.9, -0.2, 0.0, 0.2, 0.9])
    p3 = compound_to_probs(c, "fin_sentiment", threshold=0.05, scale=5.0)
    assert np.allclose(p3.sum(1), 1.0)
    assert list(p3.argmax(1)) == [0, 0, 1, 2, 2]
    p2 = compound_to_probs(c, "sentiment", threshold=0.0, scale=5.0)
    assert np.all(np.diff(p2[:, 1]) > 0)  # monotone in the compound score

"""Which catalog entries the runtime sees: serving models only; evaluation sees them all."""

from __future__ import annotations

from models.recipes import RECIPES
from models.registry import Registry


def test_workers_never_load_a_model_that_is_not_serving() -> None:
    # committed ones: a full checkpoint (ft-fin) is never here in tests (tests/conftest.py)
    unserved = [rid for rid, r in RECIPES.items() if not r.serving and not r.local]
    assert unserved == ["lora-fin-mpnet", "lora-fin-refit", "lora-fin-allagree"]
    runtime = Registry.load(include_test=False)
    listing = Registry.load(include_test=False, include_unserved=True)
    for rid in unserved:
        assert rid not in runtime
        assert rid in listing
        assert listing.get(rid).serving is False
    assert {s.id for s in listing} - {s.id for s in runtime} == set(unserved)
    # The task keeps its served models, and the allocator is offered only those.
    assert "lora-fin" in {s.id for s in runtime.for_task("fin_sentiment")}
    assert not set(unserved) & {s.id for s in listing.for_task("fin_sentiment")}


def test_the_catalog_entry_carries_the_recipe_flag() -> None:
    spec = Registry.load(include_unserved=True).get("lora-fin-allagree")
    assert RECIPES["lora-fin-allagree"].spec_fields()["serving"] is False
    assert spec.metrics["test_set"] == "fpb_allagree_test"
    assert "serving" not in RECIPES["lora-fin"].spec_fields()  # served is the default


def test_quality_is_the_validation_score_never_a_test_score() -> None:
    from models.registry import ModelSpec

    def spec(metrics: dict) -> ModelSpec:
        return ModelSpec(id="m", task="t", kind="linear", adapter="x", labels=["a"], metrics=metrics)

    tested_only = spec({"test_set": "t_test", "accuracy": 0.99, "macro_f1": 0.98})
    assert tested_only.validation_score is None and tested_only.quality == 0.5
    both = spec({"accuracy": 0.99, "macro_f1": 0.98, "val_macro_f1": 0.7, "val_accuracy": 0.8})
    assert both.validation_score == both.quality == 0.7
    assert spec({"f1": 0.9, "val_f1": 0.85}).quality == 0.85

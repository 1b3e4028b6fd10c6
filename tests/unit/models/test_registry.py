"""Which catalog entries the runtime sees: serving models only; evaluation sees them all."""

from __future__ import annotations

from models.recipes import RECIPES
from models.registry import Registry


def test_workers_never_load_a_model_that_is_not_serving() -> None:
    unserved = [rid for rid, r in RECIPES.items() if not r.serving]
    assert unserved == ["lora-fin-allagree"]
    runtime = Registry.load(include_test=False)
    listing = Registry.load(include_test=False, include_unserved=True)
    assert "lora-fin-allagree" not in runtime
    assert "lora-fin-allagree" in listing
    assert listing.get("lora-fin-allagree").serving is False
    assert {s.id for s in listing} - {s.id for s in runtime} == {"lora-fin-allagree"}
    # The task keeps its served models, and the allocator is offered only those.
    assert "lora-fin" in {s.id for s in runtime.for_task("fin_sentiment")}
    assert "lora-fin-allagree" not in {s.id for s in listing.for_task("fin_sentiment")}


def test_the_catalog_entry_carries_the_recipe_flag() -> None:
    spec = Registry.load(include_unserved=True).get("lora-fin-allagree")
    assert RECIPES["lora-fin-allagree"].spec_fields()["serving"] is False
    assert spec.metrics["test_set"] == "fpb_allagree_test"
    assert "serving" not in RECIPES["lora-fin"].spec_fields()  # served is the default

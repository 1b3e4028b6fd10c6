"""Pinned choices of the allocation score on constructed registries."""

from models.registry import ModelSpec
from models.scoring import Load, allocate, estimate_ms


def spec(mid: str, quality: float, ms_per_item: float, cost: float = 1.0) -> ModelSpec:
    return ModelSpec(
        id=mid,
        task="t",
        kind="test",
        adapter="test",
        metrics={"val_macro_f1": quality},
        latency_ms={"1": ms_per_item * 2, "32": ms_per_item},
        cost=cost,
    )


FAST = spec("fast", 0.72, 0.05)
GOOD = spec("good", 0.85, 2.0, cost=20)
BEST = spec("best", 0.90, 20.0, cost=80)


def test_best_feasible_model_wins_with_an_ensemble_of_close_ones():
    a = allocate("t", [FAST, GOOD, BEST], budget_ms=20_000, loads={})
    assert a.models[0] == "best"
    assert set(a.models) == {"best", "good"}  # fast is more than the margin below best
    assert abs(sum(a.weights.values()) - 1) < 1e-3
    assert a.weights["best"] > a.weights["good"]
    assert not a.degraded


def test_tight_budget_drops_the_slow_model():
    a = allocate("t", [FAST, GOOD, BEST], budget_ms=200, loads={})
    assert "best" not in a.models  # 20 ms x 32 = 640 ms > 200 ms
    assert a.models[0] == "good"
    assert a.degraded  # the highest-quality model was left out for latency


def test_lag_moves_traffic_away_and_back():
    loaded = {"good": Load(lag=5000, per_item_ms=2.0, batch_ms=64.0, ts=0)}
    a = allocate("t", [FAST, GOOD], budget_ms=500, loads=loaded)
    assert a.models == ["fast"]
    recovered = {"good": Load(lag=0, per_item_ms=2.0, batch_ms=64.0, ts=0)}
    b = allocate("t", [FAST, GOOD], budget_ms=500, loads=recovered)
    assert b.models[0] == "good"


def test_nothing_feasible_degrades_to_the_fastest():
    a = allocate("t", [GOOD, BEST], budget_ms=1, loads={})
    assert a.models == ["good"] and a.degraded and "no model fits" in a.reason


def test_estimate_includes_backlog():
    assert estimate_ms(FAST, Load(lag=1000, per_item_ms=0.05, batch_ms=1.6)) >= 50


def test_ensemble_is_capped():
    a = allocate("t", [FAST, GOOD, BEST], budget_ms=20_000, loads={}, ensemble_max=2)
    assert len(a.models) == 2


def test_no_candidates():
    assert allocate("t", [], 100, {}) is None


def test_a_held_slow_model_loses_and_a_held_fast_one_keeps_its_place():
    slow_again = {"best": Load(lag=0, per_item_ms=31.0, batch_ms=1000.0, ts=0, held=True)}
    assert allocate("t", [GOOD, BEST], budget_ms=800, loads=slow_again).models == ["good"]
    fast = {"best": Load(lag=0, per_item_ms=1.0, batch_ms=32.0, ts=0, held=True)}
    assert allocate("t", [GOOD, BEST], budget_ms=2000, loads=fast).models[0] == "best"


def _choice(strategy: str, best: str = "best"):
    from models.stacking import FusionChoice

    acc = {"single": 0.85, "weighted_vote": 0.84, "stacking": 0.83}
    return FusionChoice("t", strategy, best, ("best", "good"), acc)


def test_an_ensemble_that_did_not_pay_on_validation_is_cut_to_its_best_member():
    from models.scoring import follow_choice

    a = allocate("t", [FAST, GOOD, BEST], budget_ms=20_000, loads={})
    cut = follow_choice(a, _choice("single"))
    assert cut.models == ["best"] and cut.weights == {"best": 1.0}
    assert "ensemble not run" in cut.reason and cut.degraded == a.degraded


def test_an_ensemble_is_kept_when_it_paid_or_another_model_leads():
    from models.scoring import follow_choice

    a = allocate("t", [FAST, GOOD, BEST], budget_ms=20_000, loads={})
    assert follow_choice(a, _choice("stacking")) == a
    assert follow_choice(a, None) == a
    # the best model over budget: the ensemble led by another was not what the choice compared
    tight = allocate("t", [FAST, GOOD, BEST], budget_ms=200, loads={})
    assert follow_choice(tight, _choice("single")) == tight
    # a model the choice did not compare is in the ensemble
    wide = allocate("t", [FAST, GOOD, BEST], budget_ms=20_000, loads={}, margin=1.0)
    assert "fast" in wide.models and follow_choice(wide, _choice("single")) == wide

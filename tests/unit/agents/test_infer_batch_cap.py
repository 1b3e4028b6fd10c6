"""Latency-targeted micro-batch size of the infer stage (pure functions, no broker)."""

import pytest

from agents.infer import (
    catalog_curve,
    latency_batch_cap,
    live_curve,
    message_budget_ms,
    per_item_at,
    slowest_curve,
)
from models.registry import ModelSpec
from streams.records import Subtask

# ms per item by batch size, shaped like a LoRA MiniLM model's on 2 CPU cores
CURVE = {1: 30.0, 8: 20.0, 32: 15.0, 128: 12.0}


def test_per_item_interpolates_between_sizes_and_is_flat_outside():
    assert per_item_at(CURVE, 1) == 30.0
    assert per_item_at(CURVE, 20) == pytest.approx(17.5)  # halfway between 8 and 32
    assert per_item_at(CURVE, 0.5) == 30.0
    assert per_item_at(CURVE, 500) == 12.0
    with pytest.raises(ValueError):
        per_item_at({}, 4)


def test_cap_is_the_largest_batch_that_fits_the_share_of_the_budget():
    # 0.25 * 2000 ms = 500 ms; 25 items at 16.875 ms = 421.9 ms fits, 30 at 15.625 = 468.8
    # fits, 32 at 15 ms = 480 fits, 33 at ~14.98 = 494 fits, 34 at ~14.95 = 508 does not
    cap = latency_batch_cap(CURVE, 2000, share=0.25, batch_max=64)
    assert cap == 33
    assert cap * per_item_at(CURVE, cap) <= 500 < (cap + 1) * per_item_at(CURVE, cap + 1)


def test_cap_is_at_least_one_and_at_most_batch_max():
    assert latency_batch_cap(CURVE, 10, share=0.25, batch_max=64) == 1  # even one is too slow
    assert latency_batch_cap(CURVE, 0, share=0.25, batch_max=64) == 1
    assert latency_batch_cap(CURVE, 600_000, share=0.25, batch_max=64) == 64
    assert latency_batch_cap(CURVE, 600_000, share=0.25, batch_max=0) == 1


def test_no_curve_no_budget_or_share_off_leave_batch_max():
    assert latency_batch_cap({}, 2000, share=0.25, batch_max=64) == 64
    assert latency_batch_cap(CURVE, None, share=0.25, batch_max=64) == 64
    assert latency_batch_cap(CURVE, 2000, share=0.0, batch_max=64) == 64


def test_cap_stops_at_the_first_batch_that_does_not_fit():
    # A noisy curve (much cheaper per item at 128) must not let 64 through when 9 is too slow.
    noisy = {1: 10.0, 8: 40.0, 128: 1.0}
    assert latency_batch_cap(noisy, 1200, share=0.25, batch_max=64) == 7


def test_a_bigger_share_or_budget_never_gives_a_smaller_cap():
    caps = [latency_batch_cap(CURVE, b, share=0.25, batch_max=128) for b in (100, 500, 1000, 2000, 8000)]
    assert caps == sorted(caps) and caps[0] < caps[-1]


def test_live_curve_keeps_the_catalog_shape_at_the_live_level():
    # Live: 40 ms/item at batch 8 where the catalog says 20: twice as slow everywhere.
    live = live_curve(CURVE, 40.0, 8.0)
    assert live == {1: 60.0, 8: 40.0, 32: 30.0, 128: 24.0}
    assert live_curve(CURVE, 0.0, 0.0) == CURVE  # nothing measured yet
    assert live_curve({}, 25.0, 16.4) == {16: 25.0}  # no catalog: flat at the live figure
    # A slower live model gets smaller batches for the same budget.
    assert latency_batch_cap(live, 2000, share=0.25, batch_max=64) < latency_batch_cap(
        CURVE, 2000, share=0.25, batch_max=64
    )


def _st(created: int, deadline: int) -> Subtask:
    return Subtask(
        message_id="m", task="t", model_id="x", text="hi", deadline_ms=deadline, created_ms=created
    )


def test_message_budget_is_the_smallest_budget_without_the_grace():
    grace = 3000
    subtasks = [_st(1_000, 1_000 + 1500 + grace), _st(5_000, 5_000 + 3000 + grace)]
    assert message_budget_ms(subtasks, grace) == 1500.0
    assert message_budget_ms([], grace) is None
    assert message_budget_ms([_st(0, 100)], grace) == 0.0  # never negative


def _spec(mid: str, latency: dict[str, float]) -> ModelSpec:
    return ModelSpec(id=mid, task="t", kind="head", adapter="x", backbone="minilm", latency_ms=latency)


def test_catalog_curves_and_the_slowest_head_of_a_backbone():
    a = catalog_curve(_spec("a", {"1": 20.0, "8": 10.0, "32": 8.0}))
    b = catalog_curve(_spec("b", {"1": 25.0, "8": 9.0, "32": 9.5, "128": 7.0}))
    assert a == {1: 20.0, 8: 10.0, 32: 8.0}
    assert slowest_curve([a, b]) == {1: 25.0, 8: 10.0, 32: 9.5}
    assert slowest_curve([a, {}]) == a
    assert slowest_curve([]) == {}

"""Allocation: which model(s) serve a subtask, given measured quality, latency, cost and
live load, under the message's latency budget.

The score of model ``m`` for a subtask with budget ``B`` (ms):

    est_ms(m)  = backlog(m) * per_item_ms(m) + batch_ms(m)        # drain the queue, then a batch
    score(m)   = quality(m)
                 - LATENCY_WEIGHT * est_ms(m) / B
                 - COST_WEIGHT    * log1p(cost(m)) / log1p(MAX_COST)

``quality`` is the validation score from ``streamfuse eval`` (never the test split).
A model is *feasible* when ``est_ms <= B``. The best feasible model is chosen; when the
budget leaves room, further feasible models whose quality is within ``ENSEMBLE_MARGIN`` of
the best join an ensemble (up to ``ensemble_max``): members run in parallel on their own
consumers, so the ensemble's latency is its slowest member's. When no model is feasible the
allocation *degrades*: the model with the lowest estimated latency is used, and the plan
says so. Because backlog is part of the estimate, load spreads across models of similar
quality, and traffic returns to a model once its lag drains.

A model that was avoided for slowness forgets it while idle (``agents.infer.Meter``) and
invites one probe. Once a probe was sent (the load is *held*, ``agents.loads.LoadView``), the
figures measured before the decay stand until the probe answers: a model that was slow gets
one batch, not a burst, and one that was merely idle keeps its traffic.

An ensemble runs only where it pays: when validation data showed the task's ensemble no more
accurate than the model the allocator ranks first, alone (``models.stacking.FusionChoice``),
and an allocation is led by that model and drawn from the ensemble compared, only that model
runs (:func:`follow_choice`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from models.registry import ModelSpec

if TYPE_CHECKING:
    from models.stacking import FusionChoice

LATENCY_WEIGHT = 0.15
COST_WEIGHT = 0.05
MAX_COST = 100.0
ENSEMBLE_MARGIN = 0.15
ENSEMBLE_BUDGET_SHARE = 0.5  # an ensemble may use at most this share of the budget
STALE_LOAD_MS = 10_000  # load reports older than this are ignored


@dataclass(slots=True, frozen=True)
class Load:
    """A model's live load, summed over its infer workers."""

    lag: int = 0
    per_item_ms: float | None = None
    batch_ms: float | None = None
    ts: int = 0
    held: bool = False  # a probe was sent; the figures are the ones from before the decay


@dataclass(slots=True, frozen=True)
class Candidate:
    model_id: str
    quality: float
    est_ms: float
    score: float
    feasible: bool


@dataclass(slots=True, frozen=True)
class Allocation:
    task: str
    models: list[str]
    scores: dict[str, float]
    weights: dict[str, float]
    degraded: bool
    reason: str


def estimate_ms(spec: ModelSpec, load: Load | None, batch_size: int = 32) -> float:
    """Expected time until a new subtask for ``spec`` has its prediction."""
    per_item = spec.latency_per_item(batch_size)
    batch_ms = per_item * batch_size
    backlog = 0
    if load is not None:
        if load.per_item_ms is not None:
            per_item = max(per_item, load.per_item_ms)
        if load.batch_ms is not None:
            batch_ms = max(load.batch_ms, per_item)
        backlog = load.lag
    return backlog * per_item + batch_ms


def _static(spec: ModelSpec) -> tuple[float, float]:
    """(quality, cost penalty): fixed per catalog entry, computed once and kept on the spec
    (allocation runs per message, so per-call work is kept to the load-dependent part)."""
    cached = spec._scoring_static
    if cached is None:
        cached = (spec.quality, COST_WEIGHT * math.log1p(spec.cost) / math.log1p(MAX_COST))
        spec._scoring_static = cached
    return cached


def score_model(spec: ModelSpec, budget_ms: float, load: Load | None) -> Candidate:
    """Score one model for one subtask (higher is better)."""
    quality, cost_penalty = _static(spec)
    est = estimate_ms(spec, load)
    score = quality - LATENCY_WEIGHT * est / max(budget_ms, 1.0) - cost_penalty
    return Candidate(spec.id, quality, est, round(score, 4), est <= budget_ms)


def allocate(
    task: str,
    candidates: Sequence[ModelSpec],
    budget_ms: float,
    loads: Mapping[str, Load],
    ensemble_max: int = 3,
    margin: float | None = None,
) -> Allocation | None:
    """Choose one model or an ensemble for ``task``; None when there is no candidate."""
    if not candidates:
        return None
    scored = sorted(
        (score_model(s, budget_ms, loads.get(s.id)) for s in candidates),
        key=lambda c: (-c.score, c.est_ms, c.model_id),
    )
    scores = {c.model_id: c.score for c in scored}
    feasible = [c for c in scored if c.feasible]
    if not feasible:
        fastest = min(scored, key=lambda c: (c.est_ms, -c.score))
        return Allocation(
            task,
            [fastest.model_id],
            scores,
            {fastest.model_id: 1.0},
            degraded=True,
            reason=f"no model fits the {budget_ms:.0f} ms budget; fastest "
            f"({fastest.est_ms:.0f} ms est.) chosen",
        )
    best = feasible[0]
    chosen = [best]
    margin = ENSEMBLE_MARGIN if margin is None else margin
    for c in feasible[1:]:
        if len(chosen) >= ensemble_max:
            break
        if c.quality >= best.quality - margin and c.est_ms <= ENSEMBLE_BUDGET_SHARE * budget_ms:
            chosen.append(c)
    weights = _weights([c.quality for c in chosen])
    ids = [c.model_id for c in chosen]
    skipped = [c.model_id for c in scored if c.model_id not in ids and not c.feasible]
    reason = f"best score {best.model_id} ({best.score:.3f})"
    if len(ids) > 1:
        reason += f"; ensemble of {len(ids)} within the budget"
    if skipped:
        reason += f"; over budget: {', '.join(skipped)}"
    # degraded: the model that would win on quality alone was left out for its latency
    top_quality = max(candidates, key=lambda s: (s.quality, -s.cost))
    degraded = top_quality.id not in ids and not scores_feasible(scored, top_quality.id)
    return Allocation(task, ids, scores, dict(zip(ids, weights, strict=True)), degraded, reason)


def scores_feasible(scored: Sequence[Candidate], model_id: str) -> bool:
    return any(c.model_id == model_id and c.feasible for c in scored)


def _weights(qualities: Sequence[float]) -> list[float]:
    """Fusion weights from validation quality: log-odds over chance, normalised."""
    raw = [max(math.log(max(q, 1e-3) / max(1 - q, 1e-3)), 0.05) for q in qualities]
    total = sum(raw)
    return [round(r / total, 4) for r in raw]


def follow_choice(alloc: Allocation, choice: FusionChoice | None) -> Allocation:
    """The allocation with its ensemble cut to its lead model when the task's fusion choice
    (made on validation data) is ``single`` for that lead, and the ensemble is drawn from the
    members the choice compared.

    Otherwise unchanged: an ensemble led by another model (the usual lead was over budget),
    or with models the choice did not compare, runs as allocated.
    """
    if choice is None or choice.strategy != "single" or len(alloc.models) < 2:
        return alloc
    if alloc.models[0] != choice.best or not set(alloc.models) <= set(choice.members):
        return alloc
    best = choice.best
    return replace(alloc, models=[best], weights={best: 1.0}, reason=alloc.reason + choice.single_note)

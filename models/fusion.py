"""Fusion of several models' outputs for one task (pure functions on plain data)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class Vote:
    """One model's output, as fusion sees it."""

    model_id: str
    weight: float
    label: str | None
    score: float | None = None
    probs: dict[str, float] | None = None


@dataclass(slots=True)
class Fused:
    label: str | None
    score: float | None
    probs: dict[str, float] | None
    agreement: float | None
    uncertain: bool = False


@dataclass(slots=True)
class Span:
    """An entity span as fusion sees it."""

    model_id: str
    weight: float
    start: int
    end: int
    type: str
    text: str
    score: float = 1.0
    key: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def _agreement(votes: Sequence[Vote], label: str | None) -> float | None:
    total = sum(v.weight for v in votes if v.label is not None)
    if total <= 0:
        return None
    return round(sum(v.weight for v in votes if v.label == label) / total, 4)


def weighted_vote(votes: Sequence[Vote], uncertain_below: float = 0.0) -> Fused:
    """Weighted soft vote: the weighted mean of calibrated distributions.

    Votes without a distribution count as one-hot on their label.
    """
    usable = [v for v in votes if v.probs or v.label is not None]
    if not usable:
        return Fused(None, None, None, None, uncertain=True)
    acc: dict[str, float] = defaultdict(float)
    total = 0.0
    for v in usable:
        dist = v.probs or {v.label: 1.0}  # type: ignore[dict-item]
        for label, p in dist.items():
            acc[label] += v.weight * p
        total += v.weight
    probs = {k: round(val / total, 6) for k, val in acc.items()} if total > 0 else dict(acc)
    label = max(probs, key=lambda k: (probs[k], k))
    score = probs[label]
    return Fused(label, round(score, 6), probs, _agreement(usable, label), score < uncertain_below)


def majority_vote(votes: Sequence[Vote], uncertain_below: float = 0.0) -> Fused:
    """Hard majority vote; ties go to the label with the larger summed weight."""
    usable = [v for v in votes if v.label is not None]
    if not usable:
        return Fused(None, None, None, None, uncertain=True)
    counts = Counter(v.label for v in usable)
    weight_sum: dict[str, float] = defaultdict(float)
    for v in usable:
        weight_sum[v.label] += v.weight  # type: ignore[index]
    label = max(counts, key=lambda k: (counts[k], weight_sum[k], k))  # type: ignore[arg-type]
    share = counts[label] / len(usable)
    return Fused(label, round(share, 6), None, round(share, 4), share < uncertain_below)


def fuse_labels(strategy: str, votes: Sequence[Vote], uncertain_below: float = 0.0) -> Fused:
    """Dispatch on the plan's strategy (single behaves as a one-member weighted vote)."""
    if strategy == "majority_vote":
        return majority_vote(votes, uncertain_below)
    return weighted_vote(votes, uncertain_below)


def span_vote(
    spans: Sequence[Span],
    capable: Mapping[str, Mapping[str, float]],
    min_share: float = 0.5,
) -> list[Span]:
    """Keep entity spans backed by more than ``min_share`` of the weight of the models able
    to produce their type.

    ``capable`` maps an entity type to {model id: weight} of the models whose label set has
    that type (and that answered). A model that could have found the span but did not votes
    against it; a model that cannot produce the type (a ticker extractor for PER) has no say.
    So a rule-based TICKER span stands on its own, while one NER model out of two is not
    enough for a PER span.
    """
    groups: dict[tuple[int, int, str], list[Span]] = defaultdict(list)
    for s in spans:
        groups[(s.start, s.end, s.type)].append(s)
    kept: list[Span] = []
    for (start, end, etype), members in groups.items():
        voters = capable.get(etype) or {m.model_id: m.weight for m in members}
        total = sum(voters.values()) or 1.0
        backing = {m.model_id for m in members}
        share = sum(w for mid, w in voters.items() if mid in backing) / total
        if share > min_share:
            best = max(members, key=lambda m: m.score)
            kept.append(
                Span(
                    "fused",
                    1.0,
                    start,
                    end,
                    etype,
                    best.text,
                    round(share, 4),
                    best.key,
                    {"votes": len(backing)},
                )
            )
    return dedupe_spans(kept)


def dedupe_spans(spans: Sequence[Span]) -> list[Span]:
    """Drop spans overlapping a higher-scoring one; keep document order."""
    kept: list[Span] = []
    for s in sorted(spans, key=lambda s: (-s.score, s.start)):
        if all(s.end <= k.start or s.start >= k.end for k in kept):
            kept.append(s)
    return sorted(kept, key=lambda s: s.start)

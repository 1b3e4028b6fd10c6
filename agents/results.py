"""Plan + Predictions -> Result: fusion per task, then post-processing (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from agents.assist import AssistRules, post_process
from models.fusion import Fused, Span, Vote, fuse_labels, span_vote
from models.stacking import load_stacker
from streams.records import EntityOut, ModelVote, Plan, Prediction, Result, TaskPlan, TaskResult

SENTIMENT_TASKS = ("fin_sentiment", "sentiment")


def build_result(
    plan: Plan,
    predictions: Mapping[tuple[str, str], Prediction],
    now_ms: int,
    *,
    partial: bool,
    uncertain_below: float,
    labels_of: Mapping[str, Sequence[str]] | None = None,
    assist_rules: AssistRules | None = None,
) -> Result:
    """Fuse every task of the plan from the predictions that arrived.

    ``labels_of`` gives each model's label set (entity types for NER models); span voting
    uses it to know which models could have produced a span. ``assist_rules`` tune the
    customer-service assist of support turns (``agents.assist``).
    """
    outputs: dict[str, TaskResult] = {}
    missing_all: list[str] = []
    model_ms = 0.0
    queue_ms = 0.0
    unserved_tasks = 0
    for tp in plan.tasks:
        got = {m: predictions.get((tp.task, m)) for m in tp.models}
        # models fuse added after every planned model failed (failover)
        got.update({m: p for (task, m), p in predictions.items() if task == tp.task and m not in got})
        missing = [m for m, p in got.items() if p is None]
        missing_all.extend(f"{tp.task}:{m}" for m in missing)
        arrived = [p for p in got.values() if p is not None]
        for p in arrived:
            model_ms = max(model_ms, p.model_ms)
            queue_ms = max(queue_ms, p.queue_ms)
        outputs[tp.task] = fuse_task(tp, arrived, missing, uncertain_below, labels_of or {})
        if not any(p.error is None for p in arrived):
            unserved_tasks += 1  # every model tried for this task failed or never answered
    _attribute_sentiment(outputs)
    recognized = plan.stage_ts.get("recognized", now_ms)
    stage_ts = {**plan.stage_ts, "fused": now_ms}
    result = Result(
        id=plan.message_id,
        text=plan.text,
        source=plan.source,
        key=plan.key,
        ts=plan.ts,
        meta=plan.meta,
        lang=plan.lang,
        domain=plan.domain,
        task_source=plan.task_source,
        outputs=outputs,
        unserved=plan.unserved,
        partial=partial or unserved_tasks > 0,
        missing=missing_all,
        latency_ms={
            "queue": round(queue_ms, 3),
            "model": round(model_ms, 3),
            "recognize_to_fuse": float(now_ms - recognized),
        },
        stage_ts=stage_ts,
        origin=plan.origin,
    )
    # Post-processing: reply template, articles and hand-off for support turns (issue 9).
    post_process(result, predictions.values(), assist_rules)
    return result


def fuse_task(
    tp: TaskPlan,
    arrived: list[Prediction],
    missing: list[str],
    uncertain_below: float,
    labels_of: Mapping[str, Sequence[str]],
) -> TaskResult:
    """Fuse one task's predictions according to the plan's strategy."""
    ok = [p for p in arrived if p.error is None]
    votes_out = [
        ModelVote(
            model_id=p.model_id,
            weight=tp.weights.get(p.model_id, 1.0),
            label=p.label,
            score=p.score,
            error=p.error,
        )
        for p in arrived
    ]
    if tp.strategy == "span_vote":
        spans = [
            Span(
                p.model_id,
                tp.weights.get(p.model_id, 1.0),
                e.start,
                e.end,
                e.type,
                e.text,
                e.score,
                e.key,
            )
            for p in ok
            for e in (p.entities or [])
        ]
        capable: dict[str, dict[str, float]] = {}
        for p in ok:
            for etype in {lab.split("-", 1)[-1] for lab in labels_of.get(p.model_id, ())}:
                capable.setdefault(etype, {})[p.model_id] = tp.weights.get(p.model_id, 1.0)
        fused = span_vote(spans, capable)
        entities = _dedupe_entities(
            [
                EntityOut(
                    text=s.text,
                    type=s.type,
                    start=s.start,
                    end=s.end,
                    score=s.score,
                    key=s.key or company_key(s.text),
                    votes=int(s.extra.get("votes", 1)),
                )
                for s in fused
            ]
        )
        return TaskResult(
            entities=entities,
            strategy="span_vote",
            models=votes_out,
            missing=missing,
            allocation=tp,
            agreement=None,
        )
    votes = [Vote(p.model_id, tp.weights.get(p.model_id, 1.0), p.label, p.score, p.probs) for p in ok]
    strategy, extra = tp.strategy, None
    fused = stacked(tp.task, votes, uncertain_below) if strategy == "stacking" else None
    if strategy == "stacking" and fused is None:
        strategy, extra = "weighted_vote", {"stacking_fallback": "a stacking member did not answer"}
    if fused is None:
        fused = fuse_labels(strategy, votes, uncertain_below)
    return TaskResult(
        extra=extra,
        label=fused.label,
        score=fused.score,
        probs=fused.probs,
        strategy=strategy,
        models=votes_out,
        agreement=fused.agreement,
        uncertain=fused.uncertain,
        missing=missing,
        allocation=tp,
    )


def stacked(task: str, votes: Sequence[Vote], uncertain_below: float) -> Fused | None:
    """The stacking meta-learner's answer, or None when a member's distribution is missing."""
    stacker = load_stacker(task)
    have = {v.model_id: v.probs for v in votes if v.probs}
    if stacker is None or not set(stacker.members) <= set(have):
        return None
    probs = stacker.predict(have)
    label = max(probs, key=lambda k: (probs[k], k))
    voters = [v for v in votes if v.model_id in stacker.members]
    total = sum(v.weight for v in voters) or 1.0
    agreement = round(sum(v.weight for v in voters if v.label == label) / total, 4)
    return Fused(label, probs[label], probs, agreement, probs[label] < uncertain_below)


@lru_cache(maxsize=1)
def _company_names() -> dict[str, str]:
    from models.adapters.tickers import TickerExtractor

    return TickerExtractor().name_key


def company_key(text: str) -> str | None:
    """A company name an NER model found, normalised to its ticker ("Apple" -> "AAPL"), so
    that windows per entity see one key whichever model found the mention."""
    return _company_names().get(text.strip())


def _dedupe_entities(entities: list[EntityOut]) -> list[EntityOut]:
    """One entry per normalised entity key (ticker or lower-cased name), first mention kept."""
    seen: set[str] = set()
    out = []
    for e in entities:
        k = (e.key or e.text).strip().lower()
        if k in seen:
            continue
        seen.add(k)
        out.append(e)
    return out


def _attribute_sentiment(outputs: dict[str, TaskResult]) -> None:
    """Attribute the message's sentiment to its entities (one-sentence messages: all of them)."""
    ents = outputs.get("entities")
    if ents is None or not ents.entities:
        return
    for task in SENTIMENT_TASKS:
        res = outputs.get(task)
        if res is not None and res.label is not None and not res.uncertain:
            for e in ents.entities:
                e.sentiment = res.label
            return

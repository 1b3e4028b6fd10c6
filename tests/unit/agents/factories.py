"""Record factories for unit tests."""

from __future__ import annotations

from streams.records import EntityOut, Plan, Prediction, Result, TaskPlan, TaskResult


def plan(
    mid: str = "m1",
    models: tuple[str, ...] = ("a", "b"),
    deadline: int = 10_000,
    task: str = "sentiment",
    strategy: str = "weighted_vote",
) -> Plan:
    return Plan(
        message_id=mid,
        text="t",
        source="s",
        ts=0,
        lang="en",
        budget_ms=1000,
        deadline_ms=deadline,
        tasks=[
            TaskPlan(
                task=task,
                models=list(models),
                weights={m: 1 / len(models) for m in models},
                strategy=strategy,
            )
        ],
        stage_ts={"recognized": 0},
    )


def pred(
    mid: str = "m1",
    model: str = "a",
    label: str = "positive",
    p: float = 0.8,
    task: str = "sentiment",
    error: str | None = None,
) -> Prediction:
    other = "negative" if label == "positive" else "positive"
    return Prediction(
        message_id=mid,
        task=task,
        model_id=model,
        label=None if error else label,
        score=None if error else p,
        probs=None if error else {label: p, other: 1 - p},
        error=error,
        ts=0,
    )


def result(
    mid: str,
    ts: int,
    *,
    source: str = "newswire",
    sentiment: str | None = "positive",
    entities: tuple[str, ...] = (),
    key: str | None = None,
    intent: str | None = None,
    text: str = "text",
) -> Result:
    outputs: dict[str, TaskResult] = {}
    if sentiment:
        outputs["fin_sentiment"] = TaskResult(label=sentiment, score=0.9)
    if entities:
        outputs["entities"] = TaskResult(
            entities=[EntityOut(text=e, type="TICKER", start=0, end=1, key=e) for e in entities],
            strategy="span_vote",
        )
    if intent:
        outputs["intent"] = TaskResult(label=intent, score=0.9)
    return Result(id=mid, text=text, source=source, key=key, ts=ts, lang="en", outputs=outputs)

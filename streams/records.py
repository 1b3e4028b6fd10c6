"""Every record that crosses a topic, in one schema module.

Input is validated strictly (wrong types are errors, never coerced); everything else is
produced by streamfuse itself. ``streamfuse schema`` publishes these as JSON Schema.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

Strategy = Literal["single", "weighted_vote", "majority_vote", "stacking", "span_vote"]


class InputMessage(BaseModel):
    """What producers publish to ``sf.in``. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: StrictStr | None = Field(default=None, min_length=1, max_length=256)
    text: StrictStr
    source: StrictStr = Field(default="default", min_length=1, max_length=128)
    key: StrictStr | None = Field(default=None, max_length=256)
    ts: int | StrictStr | None = None
    tasks: list[StrictStr] | None = Field(default=None, max_length=16)
    meta: dict[str, Any] | None = None

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty or whitespace only")
        if "\x00" in v:
            raise ValueError("text contains NUL bytes")
        return v

    @field_validator("ts")
    @classmethod
    def _ts_epoch_ms(cls, v: int | str | None) -> int | None:
        return None if v is None else parse_ts(v)


def parse_ts(value: int | str) -> int:
    """Epoch milliseconds from epoch ms (int) or an ISO 8601 string."""
    if isinstance(value, bool):
        raise ValueError("ts must be epoch milliseconds or an ISO 8601 string, not a boolean")
    if isinstance(value, int):
        if not 0 <= value < 10**14:
            raise ValueError(f"ts {value} is out of range for epoch milliseconds")
        return value
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"ts {value!r} is neither epoch milliseconds nor ISO 8601") from None
    if dt.tzinfo is None:
        raise ValueError(f"ts {value!r} has no timezone; add Z or an offset")
    return int(dt.timestamp() * 1000)


class TaskPlan(BaseModel):
    """The allocation decision for one subtask."""

    task: str
    models: list[str]
    scores: dict[str, float] = Field(default_factory=dict)  # every candidate's score
    weights: dict[str, float] = Field(default_factory=dict)  # fusion weights of chosen models
    strategy: Strategy = "single"
    reason: str = ""
    degraded: bool = False


class Unserved(BaseModel):
    """A task the message asked for that no model could serve."""

    task: str
    reason: str


class Plan(BaseModel):
    """recognize's decision for one message, joined with predictions by fuse."""

    message_id: str
    text: str
    source: str
    key: str | None = None
    ts: int
    meta: dict[str, Any] | None = None
    lang: str
    lang_score: float = 0.0
    domain: str | None = None
    domain_score: float | None = None
    task_source: str = "classifier"  # explicit | source-default | classifier
    features: dict[str, Any] = Field(default_factory=dict)
    tasks: list[TaskPlan] = Field(default_factory=list)
    unserved: list[Unserved] = Field(default_factory=list)
    budget_ms: int
    deadline_ms: int
    stage_ts: dict[str, int] = Field(default_factory=dict)
    origin: str | None = None  # topic/partition/offset of the input record

    def expected(self) -> set[tuple[str, str]]:
        """(task, model id) pairs fuse waits for."""
        return {(tp.task, m) for tp in self.tasks for m in tp.models}


class Subtask(BaseModel):
    """One unit of work for one model, on ``sf.model.<model-id>``."""

    message_id: str
    task: str
    model_id: str
    text: str
    deadline_ms: int
    created_ms: int


class EntityOut(BaseModel):
    text: str
    type: str
    start: int
    end: int
    score: float = 1.0
    key: str | None = None
    votes: int | None = None
    sentiment: str | None = None


class Prediction(BaseModel):
    """One model's output for one subtask (or its error), on ``sf.predictions``."""

    message_id: str
    task: str
    model_id: str
    label: str | None = None
    score: float | None = None
    probs: dict[str, float] | None = None
    entities: list[EntityOut] | None = None
    extra: dict[str, Any] | None = None
    error: str | None = None
    batch_size: int = 1
    queue_ms: float = 0.0  # subtask created -> batch started
    model_ms: float = 0.0  # batch compute time (shared by the batch)
    worker: str | None = None
    ts: int

    @field_validator("score")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("score must be finite")
        return v


class ModelVote(BaseModel):
    """What one model contributed to a fused task output."""

    model_id: str
    weight: float
    label: str | None = None
    score: float | None = None
    error: str | None = None


class TaskResult(BaseModel):
    """The fused output of one task."""

    label: str | None = None
    score: float | None = None
    probs: dict[str, float] | None = None
    entities: list[EntityOut] | None = None
    strategy: Strategy = "single"
    models: list[ModelVote] = Field(default_factory=list)
    agreement: float | None = None
    uncertain: bool = False
    missing: list[str] = Field(default_factory=list)
    allocation: TaskPlan | None = None
    extra: dict[str, Any] | None = None


class AssistArticle(BaseModel):
    """A help-centre article suggested for a support turn."""

    id: str
    title: str
    score: float  # cosine similarity of the message and the article, 0..1


class Assist(BaseModel):
    """Customer-service assist for a turn with a support intent (``agents/assist.py``)."""

    intent: str | None = None  # the intent whose reply template was chosen
    reply: str | None = None  # the suggested reply (None when no template fits)
    confidence: float | None = None  # fused confidence of that intent
    handoff: bool = False  # hand the turn to a person
    handoff_reasons: list[str] = Field(default_factory=list)
    articles: list[AssistArticle] = Field(default_factory=list)


class Result(BaseModel):
    """Exactly one per input message id, on ``sf.results``."""

    id: str
    text: str
    source: str
    key: str | None = None
    ts: int
    meta: dict[str, Any] | None = None
    lang: str
    domain: str | None = None
    task_source: str | None = None
    outputs: dict[str, TaskResult] = Field(default_factory=dict)
    unserved: list[Unserved] = Field(default_factory=list)
    partial: bool = False
    missing: list[str] = Field(default_factory=list)
    latency_ms: dict[str, float] = Field(default_factory=dict)
    stage_ts: dict[str, int] = Field(default_factory=dict)
    assist: Assist | None = None  # support turns only
    origin: str | None = None  # topic/partition/offset of the input record


class DeadLetter(BaseModel):
    """Input that could not be processed, with the reason, on ``sf.dlq``."""

    reason: str  # a stable code, e.g. not_json, not_utf8, invalid_field, too_large
    detail: str  # what went wrong and what to do, for a person
    stage: str
    message_id: str | None = None
    original: str  # the original bytes: UTF-8 text, or base64 when not UTF-8
    original_encoding: Literal["utf-8", "base64"] = "utf-8"
    original_size: int
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    ts: int


class WindowEvent(BaseModel):
    """One result routed to one window key, on ``sf.monitor.events`` (keyed by
    ``dimension:key``, so that every window of a key lives in one partition)."""

    dimension: Literal["source", "entity", "conversation"]
    key: str
    message_id: str
    ts: int
    sentiment: str | None = None  # the fused message sentiment, unless uncertain
    intent: str | None = None  # the fused intent, unless uncertain
    entities: list[str] = Field(default_factory=list)
    alarming: bool = False  # a negative or urgent chat turn (the escalation rule)
    src_partition: int = 0  # the sf.results partition it came from (the watermark follows each)


class WindowStats(BaseModel):
    """Statistics of one window for one key, on ``sf.windows``."""

    dimension: Literal["source", "entity", "conversation"]
    key: str
    window: Literal["tumbling", "hopping"]
    start_ms: int
    end_ms: int
    count: int
    sentiment_mean: float | None = None
    sentiment_n: int = 0
    sentiment_dist: dict[str, int] = Field(default_factory=dict)
    top_intents: list[tuple[str, int]] = Field(default_factory=list)
    top_entities: list[tuple[str, int]] = Field(default_factory=list)
    message_ids: list[str] = Field(default_factory=list)
    ts: int


class Alert(BaseModel):
    """A fired alert with its evidence, on ``sf.alerts``."""

    id: str
    rule: Literal["sentiment_shift", "escalation", "volume_spike"]
    dimension: str
    key: str
    severity: Literal["info", "warning", "critical"]
    message: str
    figures: dict[str, float] = Field(default_factory=dict)
    evidence: list[str] = Field(default_factory=list)  # message ids
    window_start_ms: int
    window_end_ms: int
    ts: int


class ModelLoad(BaseModel):
    """Live load of one model as one infer worker sees it, on ``sf.stats``."""

    model_id: str
    worker: str
    lag: int
    per_item_ms: float
    batch_ms: float
    batch_size: float
    throughput: float  # items/s over the last interval
    errors: int = 0
    probe: bool = False  # figures forgotten while idle: send one probe batch, then wait
    # with ``probe``: the figures measured before the decay, which stand once a probe is sent
    measured_per_item_ms: float | None = None
    measured_batch_ms: float | None = None
    ts: int


RECORD_TYPES: dict[str, type[BaseModel]] = {
    "input": InputMessage,
    "plan": Plan,
    "subtask": Subtask,
    "prediction": Prediction,
    "result": Result,
    "dead_letter": DeadLetter,
    "window_event": WindowEvent,
    "window": WindowStats,
    "alert": Alert,
    "model_load": ModelLoad,
}

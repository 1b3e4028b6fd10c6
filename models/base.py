"""The one interface every model in the library implements: a batch of texts in, a batch
of outputs out. Adapters know nothing of Kafka; the infer stage wraps them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(slots=True)
class Entity:
    """One entity span found in a text (character offsets into the cleaned text)."""

    text: str
    type: str  # PER, LOC, ORG, MISC, TICKER
    start: int
    end: int
    score: float = 1.0
    key: str | None = None  # normalised entity key, e.g. "AAPL" for "Apple Inc."

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "type": self.type,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 4),
            "key": self.key,
        }


@dataclass(slots=True)
class ModelOutput:
    """What one model says about one text.

    ``probs`` maps every label of the model to a probability (None for models that have no
    distribution, such as span extractors); ``entities`` is set by NER models only.
    """

    label: str | None
    score: float
    probs: dict[str, float] | None = None
    entities: list[Entity] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    """A loaded model. ``predict`` must accept any batch size and keep input order."""

    model_id: str
    task: str
    labels: list[str]
    backbone: str | None  # models sharing a backbone can share one forward pass

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Predict a batch; returns one output per text, in order."""
        ...

"""Topic names: one place, derived from the configured prefix. No magic strings elsewhere."""

from __future__ import annotations

import re
from dataclasses import dataclass

from streams.settings import Settings, get_settings

_MODEL_ID = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic streamfuse reads or writes."""

    prefix: str

    @property
    def input(self) -> str:
        return f"{self.prefix}in"

    @property
    def plans(self) -> str:
        return f"{self.prefix}plans"

    @property
    def predictions(self) -> str:
        return f"{self.prefix}predictions"

    @property
    def results(self) -> str:
        return f"{self.prefix}results"

    @property
    def windows(self) -> str:
        return f"{self.prefix}windows"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}dlq"

    @property
    def monitor_events(self) -> str:
        """Results routed per window key (repartitioned by ``dimension:key``)."""
        return f"{self.prefix}monitor.events"

    @property
    def monitor_changelog(self) -> str:
        """The window table's changelog: compacted, one partition per event partition."""
        return f"{self.prefix}monitor.changelog"

    @property
    def stats(self) -> str:
        """Live load of every model, published by infer workers, read by the allocator."""
        return f"{self.prefix}stats"

    @property
    def kb(self) -> str:
        """The help-centre knowledge base: compacted, keyed by article id (a null value deletes)."""
        return f"{self.prefix}kb"

    def model(self, model_id: str) -> str:
        """The subtask topic of one model."""
        if not _MODEL_ID.match(model_id):
            raise ValueError(f"model id {model_id!r} is not a valid topic name part")
        return f"{self.prefix}model.{model_id}"

    def backbone(self, name: str) -> str:
        """The subtask topic of every head on one backbone (co-scheduled: one encoder pass)."""
        if not _MODEL_ID.match(name):
            raise ValueError(f"backbone {name!r} is not a valid topic name part")
        return f"{self.prefix}backbone.{name}"

    def subtask_topic(self, model_id: str, backbone: str | None) -> str:
        """Where a model's subtasks go: its backbone's topic when it has one."""
        return self.backbone(backbone) if backbone else self.model(model_id)

    def core(self) -> list[str]:
        return [
            self.input,
            self.plans,
            self.predictions,
            self.results,
            self.windows,
            self.alerts,
            self.dlq,
            self.stats,
            self.kb,
            self.monitor_events,
            self.monitor_changelog,
        ]

    def tail_target(self, name: str) -> str:
        """Topic for a `streamfuse tail` target (results, windows, alerts, dlq, ...)."""
        mapping = {
            "results": self.results,
            "windows": self.windows,
            "alerts": self.alerts,
            "dlq": self.dlq,
            "plans": self.plans,
            "predictions": self.predictions,
            "stats": self.stats,
            "kb": self.kb,
            "in": self.input,
        }
        try:
            return mapping[name]
        except KeyError:
            raise ValueError(f"unknown tail target {name!r}; choose one of {', '.join(mapping)}") from None


def get_topics(settings: Settings | None = None) -> Topics:
    """Topics for the given (or process-wide) settings."""
    return Topics((settings or get_settings()).topic_prefix)

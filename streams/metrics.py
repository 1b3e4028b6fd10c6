"""Prometheus metrics of one worker process, and the /metrics endpoint.

Stages call the module-level functions (one line each) at the points where work is done;
nothing here touches Kafka. ``start_metrics_server(settings)`` serves ``/metrics`` on
``STREAMFUSE_METRICS_HOST:STREAMFUSE_METRICS_PORT`` (port 0 = off, the default). Every
worker process needs its own port; Prometheus tells the processes apart by ``instance``.

Metric families (all prefixed ``streamfuse_``):

=====================================  =========  ==============================================
name                                   type       labels
=====================================  =========  ==============================================
stage_records_total                    counter    stage, model (infer only; else empty)
stage_batch_seconds                    histogram  stage, model: one batch, consume to commit
model_batch_size                       histogram  model: records per model call
model_compute_seconds                  histogram  model: one batched model call
model_lag                              gauge      model: records behind on its subtask topic
model_errors_total                     counter    model, kind (error | timeout | expired)
subtasks_total                         counter    model: subtasks the allocator routed to it
                                                  (heads on a shared backbone: per head)
dlq_total                              counter    stage, reason
alerts_total                           counter    rule, severity
windows_total                          counter    (closed windows published)
results_total                          counter    partial ("true" | "false")
result_latency_seconds                 histogram  recognize -> fused, per result
input_paused                           gauge      1 while recognize holds its input back
                                                  (a model's backlog is over the limit)
=====================================  =========  ==============================================

For infer, ``model`` is the model server's name: a model id, or ``backbone.<name>`` for the
heads co-scheduled on one encoder (one forward pass serves them all).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, get_args

import orjson
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from streams.records import Alert

if TYPE_CHECKING:
    from streams.app import Outgoing
    from streams.settings import Settings
    from streams.topics import Topics

log = logging.getLogger(__name__)

STAGES = ("recognize", "infer", "fuse", "monitor")
SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
ERROR_KINDS = ("error", "timeout", "expired")
# Dead-letter reasons each stage can produce (agents/validate.py and the stages), created at 0
# when a stage first publishes, so that increase() in Prometheus sees the first one too.
DLQ_REASONS = {
    "recognize": (
        "empty",
        "too_large",
        "not_utf8",
        "not_json",
        "not_object",
        "invalid_field",
        "text_too_large",
        "unknown_task",
    ),
    "infer": ("bad_subtask",),
    "fuse": ("bad_internal_record",),
}


class Metrics:
    """The metric families, registered on one registry (tests use their own)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY, namespace: str = "streamfuse"):
        self.registry = registry
        kw: dict[str, Any] = {"namespace": namespace, "registry": registry}
        self.stage_records = Counter(
            "stage_records",
            "Records consumed and processed by a stage",
            ["stage", "model"],
            **kw,
        )
        self.stage_seconds = Histogram(
            "stage_batch_seconds",
            "Time to process one batch, from consume to commit",
            ["stage", "model"],
            buckets=SECONDS_BUCKETS,
            **kw,
        )
        self.batch_size = Histogram(
            "model_batch_size",
            "Records per batched model call",
            ["model"],
            buckets=BATCH_BUCKETS,
            **kw,
        )
        self.compute_seconds = Histogram(
            "model_compute_seconds",
            "Time of one batched model call",
            ["model"],
            buckets=SECONDS_BUCKETS,
            **kw,
        )
        self.lag = Gauge(
            "model_lag",
            "Records behind on the model's subtask topic (this worker's share)",
            ["model"],
            **kw,
        )
        self.model_errors = Counter(
            "model_errors",
            "Subtasks answered with an error prediction",
            ["model", "kind"],
            **kw,
        )
        self.subtasks = Counter(
            "subtasks",
            "Subtasks the allocator routed to a model",
            ["model"],
            **kw,
        )
        self.dlq = Counter(
            "dlq",
            "Records sent to the dead-letter topic",
            ["stage", "reason"],
            **kw,
        )
        self.alerts = Counter("alerts", "Alerts fired", ["rule", "severity"], **kw)
        self.windows = Counter("windows", "Closed windows published", **kw)
        self.results = Counter(
            "results",
            "Results published (partial = deadline passed first)",
            ["partial"],
            **kw,
        )
        self.result_latency = Histogram(
            "result_latency_seconds",
            "From recognize to the fused result, per message",
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.input_paused = Gauge(
            "input_paused",
            "1 while recognize holds its input back because a model's backlog is over the limit",
            **kw,
        )
        self._seen_stages: set[str] = set()

    # --- the API the stages call -------------------------------------------------------
    def stage_batch(self, stage: str, n: int, seconds: float, model: str | None = None) -> None:
        """One batch of ``n`` records done by ``stage`` in ``seconds`` (empty batches: no-op)."""
        if n <= 0:
            return
        labels = (stage, model or "")
        self.stage_records.labels(*labels).inc(n)
        self.stage_seconds.labels(*labels).observe(max(0.0, seconds))

    def model_batch(self, model: str, n: int, seconds: float) -> None:
        """One batched model call over ``n`` texts that took ``seconds``."""
        self.batch_size.labels(model).observe(n)
        self.compute_seconds.labels(model).observe(max(0.0, seconds))

    def model_lag(self, model: str, lag: int) -> None:
        self.lag.labels(model).set(lag)

    def backpressure(self, paused: bool) -> None:
        self.input_paused.set(1 if paused else 0)

    def model_error(self, model: str, kind: str, n: int = 1) -> None:
        """``n`` subtasks of ``model`` answered with errors (error, timeout or expired)."""
        if n > 0:
            self.model_errors.labels(model, kind).inc(n)

    def dead_letter(self, reason: str, stage: str, n: int = 1) -> None:
        self.dlq.labels(stage, reason).inc(n)

    def alert(self, rule: str, severity: str) -> None:
        self.alerts.labels(rule, severity).inc()

    def result(self, partial: bool, latency_ms: float | None = None) -> None:
        """One result published; ``latency_ms`` from recognize to fused."""
        if "results" not in self._seen_stages:
            self._seen_stages.add("results")
            for flag in ("true", "false"):
                self.results.labels(flag)
        self.results.labels("true" if partial else "false").inc()
        if latency_ms is not None:
            self.result_latency.observe(max(0.0, latency_ms) / 1000)

    def published(self, stage: str, records: Iterable[Outgoing], topics: Topics) -> None:
        """Count what a stage just published, by topic: subtasks per model, dead letters by
        reason, alerts by rule, windows. Only dead letters and alerts are decoded (rare)."""
        if stage not in self._seen_stages:
            self._zero_series(stage)
        model_prefix = f"{topics.prefix}model."
        backbone_prefix = f"{topics.prefix}backbone."
        for rec in records:
            topic = rec.topic
            if topic.startswith(model_prefix):
                self.subtasks.labels(topic[len(model_prefix) :]).inc()
            elif topic.startswith(backbone_prefix):  # co-scheduled heads share one topic
                self.subtasks.labels(str(_field(rec.value, "model_id") or "unknown")).inc()
            elif topic == topics.windows:
                self.windows.inc()
            elif topic == topics.dlq:
                self.dead_letter(str(_field(rec.value, "reason") or "unknown"), stage)
            elif topic == topics.alerts:
                self.alert(
                    str(_field(rec.value, "rule") or "unknown"),
                    str(_field(rec.value, "severity") or "unknown"),
                )

    def _zero_series(self, stage: str) -> None:
        """Create the stage's known label sets at 0 (a counter born at 1 loses that 1 to rate())."""
        self._seen_stages.add(stage)
        for reason in DLQ_REASONS.get(stage, ()):
            self.dlq.labels(stage, reason)
        if stage == "monitor":
            for rule in get_args(Alert.model_fields["rule"].annotation):
                for severity in get_args(Alert.model_fields["severity"].annotation):
                    self.alerts.labels(rule, severity)


def _field(value: bytes, name: str) -> object:
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return data.get(name) if isinstance(data, dict) else None


# --- the process-wide instance and its one-line API ---------------------------------------
METRICS = Metrics()

stage_batch = METRICS.stage_batch
model_batch = METRICS.model_batch
model_lag = METRICS.model_lag
backpressure = METRICS.backpressure
model_error = METRICS.model_error
dead_letter = METRICS.dead_letter
alert = METRICS.alert
result = METRICS.result
published = METRICS.published


def start_metrics_server(settings: Settings, registry: CollectorRegistry = REGISTRY):
    """Serve ``/metrics`` on ``settings.metrics_host:metrics_port`` in a daemon thread.

    Returns the HTTP server (call ``shutdown()`` to stop it), or None when the port is 0.
    A busy port raises ``OSError`` with the setting to change.
    """
    if not settings.metrics_port:
        return None
    from prometheus_client import disable_created_metrics, start_http_server

    disable_created_metrics()  # no *_created series: they double the series count for nothing

    try:
        server, _thread = start_http_server(
            settings.metrics_port, addr=settings.metrics_host, registry=registry
        )
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port} ({exc}); "
            "every worker process needs its own STREAMFUSE_METRICS_PORT",
        ) from exc
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    return server

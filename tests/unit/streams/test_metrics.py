"""Prometheus metrics: the one-line API the stages call, and the /metrics endpoint."""

from __future__ import annotations

import socket
import urllib.request

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams import metrics as metrics_module
from streams.app import Outgoing
from streams.metrics import Metrics, start_metrics_server
from streams.settings import Settings
from streams.topics import Topics

TOPICS = Topics("sf.")


@pytest.fixture
def m() -> Metrics:
    return Metrics(CollectorRegistry())


def value(m: Metrics, name: str, **labels: str) -> float:
    got = m.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_stage_batch_counts_records_and_observes_latency(m: Metrics):
    m.stage_batch("recognize", 10, 0.02)
    m.stage_batch("recognize", 5, 0.5)
    assert value(m, "streamfuse_stage_records_total", stage="recognize", model="") == 15
    assert value(m, "streamfuse_stage_batch_seconds_count", stage="recognize", model="") == 2
    assert value(m, "streamfuse_stage_batch_seconds_sum", stage="recognize", model="") == 0.52
    le = {"stage": "recognize", "model": "", "le": "0.025"}
    assert m.registry.get_sample_value("streamfuse_stage_batch_seconds_bucket", le) == 1


def test_infer_is_counted_per_model(m: Metrics):
    m.stage_batch("infer", 4, 0.01, "vader-fin")
    m.stage_batch("infer", 6, 0.01, "tfidf-fin")
    assert value(m, "streamfuse_stage_records_total", stage="infer", model="vader-fin") == 4
    assert value(m, "streamfuse_stage_records_total", stage="infer", model="tfidf-fin") == 6


def test_empty_batches_are_not_observed(m: Metrics):
    m.stage_batch("fuse", 0, 0.2)
    assert value(m, "streamfuse_stage_batch_seconds_count", stage="fuse", model="") == 0


def test_model_batch_size_compute_lag_and_errors(m: Metrics):
    m.model_batch("enc", 32, 0.1)
    m.model_batch("enc", 3, 0.01)
    m.model_lag("enc", 120)
    m.model_lag("enc", 7)
    m.model_error("enc", "timeout", 5)
    m.model_error("enc", "expired", 0)
    assert value(m, "streamfuse_model_batch_size_count", model="enc") == 2
    assert value(m, "streamfuse_model_batch_size_sum", model="enc") == 35
    assert (
        m.registry.get_sample_value("streamfuse_model_batch_size_bucket", {"model": "enc", "le": "4.0"}) == 1
    )
    assert value(m, "streamfuse_model_compute_seconds_count", model="enc") == 2
    assert value(m, "streamfuse_model_lag", model="enc") == 7
    assert value(m, "streamfuse_model_errors_total", model="enc", kind="timeout") == 5
    assert value(m, "streamfuse_model_errors_total", model="enc", kind="expired") == 0


def test_published_counts_subtasks_dead_letters_alerts_and_windows(m: Metrics):
    out = [
        Outgoing(TOPICS.plans, b"{}"),
        Outgoing(TOPICS.model("vader-fin"), b"{}"),
        Outgoing(TOPICS.model("vader-fin"), b"{}"),
        Outgoing(TOPICS.model("tfidf-fin"), b"{}"),
        Outgoing(TOPICS.backbone("minilm"), orjson.dumps({"model_id": "minilm-fin"})),
        Outgoing(TOPICS.backbone("minilm"), orjson.dumps({"model_id": "minilm-sst2"})),
        Outgoing(TOPICS.dlq, orjson.dumps({"reason": "not_json", "detail": "x"})),
        Outgoing(TOPICS.dlq, b"garbage"),
        Outgoing(TOPICS.alerts, orjson.dumps({"rule": "escalation", "severity": "critical"})),
        Outgoing(TOPICS.windows, b"{}"),
        Outgoing(TOPICS.windows, b"{}"),
        Outgoing(TOPICS.results, b"{}"),
    ]
    m.published("recognize", out, TOPICS)
    assert value(m, "streamfuse_subtasks_total", model="vader-fin") == 2
    assert value(m, "streamfuse_subtasks_total", model="tfidf-fin") == 1
    assert value(m, "streamfuse_subtasks_total", model="minilm-fin") == 1
    assert value(m, "streamfuse_subtasks_total", model="minilm-sst2") == 1
    assert value(m, "streamfuse_dlq_total", stage="recognize", reason="not_json") == 1
    assert value(m, "streamfuse_dlq_total", stage="recognize", reason="unknown") == 1
    assert value(m, "streamfuse_alerts_total", rule="escalation", severity="critical") == 1
    assert value(m, "streamfuse_windows_total") == 2


def test_results_partial_and_latency(m: Metrics):
    m.result(False, 250.0)
    m.result(True, 4000.0)
    m.result(False)
    assert value(m, "streamfuse_results_total", partial="false") == 2
    assert value(m, "streamfuse_results_total", partial="true") == 1
    assert value(m, "streamfuse_result_latency_seconds_count") == 2
    assert value(m, "streamfuse_result_latency_seconds_sum") == pytest.approx(4.25)


def test_module_api_uses_the_process_registry():
    before = (
        metrics_module.REGISTRY.get_sample_value(
            "streamfuse_dlq_total", {"stage": "test", "reason": "too_large"}
        )
        or 0.0
    )
    metrics_module.dead_letter("too_large", "test")
    after = metrics_module.REGISTRY.get_sample_value(
        "streamfuse_dlq_total", {"stage": "test", "reason": "too_large"}
    )
    assert after == before + 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_server_is_off_on_port_zero():
    assert start_metrics_server(Settings(metrics_port=0)) is None


def test_metrics_server_serves_the_registry(m: Metrics):
    m.stage_batch("monitor", 3, 0.01)
    port = _free_port()
    server = start_metrics_server(Settings(metrics_port=port), m.registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert 'streamfuse_stage_records_total{model="",stage="monitor"} 3.0' in body
    finally:
        server.shutdown()
        server.server_close()


def test_a_busy_metrics_port_says_which_setting_to_change():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match="STREAMFUSE_METRICS_PORT"):
            start_metrics_server(Settings(metrics_port=port), CollectorRegistry())


def test_known_label_sets_start_at_zero_so_rate_sees_the_first_event(m: Metrics):
    m.published("recognize", [], TOPICS)
    m.published("monitor", [], TOPICS)
    m.result(False)
    assert (
        m.registry.get_sample_value("streamfuse_dlq_total", {"stage": "recognize", "reason": "not_json"}) == 0
    )
    assert (
        m.registry.get_sample_value("streamfuse_alerts_total", {"rule": "escalation", "severity": "critical"})
        == 0
    )
    assert value(m, "streamfuse_results_total", partial="true") == 0
    assert (
        m.registry.get_sample_value("streamfuse_dlq_total", {"stage": "infer", "reason": "bad_subtask"})
        is None
    )

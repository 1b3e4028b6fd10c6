"""Parsing and summarising of ``streamfuse bench-compare`` (no broker)."""

import pytest

from agents.bench_compare import parse_setting, summarise


def test_a_setting_name_gets_the_prefix_and_values_are_split():
    assert parse_setting("model_concurrency=0,1") == ("STREAMFUSE_MODEL_CONCURRENCY", ["0", "1"])
    assert parse_setting("MALLOC_ARENA_MAX=2, 8") == ("MALLOC_ARENA_MAX", ["2", "8"])


@pytest.mark.parametrize("spec", ["model_concurrency", "x=1", "=1,2", "x=1,"])
def test_a_setting_without_two_values_is_refused(spec):
    with pytest.raises(ValueError, match="NAME=V1,V2"):
        parse_setting(spec)


def _run(tput: float, p99: float, growth: float | None) -> dict:
    memory = {} if growth is None else {"infer#1": {"growth": growth}, "small#2": {"growth": growth / 2}}
    return {
        "throughput": tput,
        "latency_ms": {"p50": p99 / 2, "p95": p99 * 0.9, "p99": p99},
        "memory": memory,
    }


def test_summary_is_the_median_run_and_the_worst_growth():
    s = summarise([_run(20.0, 900.0, 0.05), _run(22.0, 1500.0, 0.12), _run(21.0, 1100.0, None)])
    assert s["runs"] == 3
    assert s["throughput"] == 21.0
    assert s["p99"] == 1100.0
    assert s["p50"] == 550.0
    assert s["max_rss_growth"] == 0.12


def test_no_memory_samples_give_no_growth():
    assert summarise([_run(20.0, 900.0, None)])["max_rss_growth"] is None


def test_idle_cores_are_the_median_per_process():
    runs = [_run(20.0, 900.0, None) for _ in range(3)]
    for run, infer in zip(runs, (0.05, 0.03, 0.04), strict=True):
        run["idle_cores"] = {"infer": infer, "broker": 0.1}
    assert summarise(runs)["idle_cores"] == {"infer": 0.04, "broker": 0.1}
    assert "idle_cores" not in summarise([_run(20.0, 900.0, None)])

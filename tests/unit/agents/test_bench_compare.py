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


def test_the_warm_up_pipeline_runs_first_with_defaults_and_is_not_measured(monkeypatch, tmp_path):
    import asyncio
    import contextlib
    from types import SimpleNamespace

    from agents import bench_compare
    from agents.bench import RunResult
    from streams.settings import Settings

    started: list[dict] = []

    class FakePipe:
        def __init__(self, env: dict) -> None:
            self.env = env

        async def run(self, msgs, rate, label):
            started.append({"label": label, "env": self.env, "n": len(msgs), "rate": rate})
            return RunResult(label, len(msgs), 1.0, 1.0, {"p50": 1, "p95": 1, "p99": 1}, 0)

    @contextlib.asynccontextmanager
    async def fake_running(settings, layout, env, logs, console):
        yield FakePipe(env)

    monkeypatch.setattr(bench_compare, "running", fake_running)
    monkeypatch.setattr(bench_compare, "message_mix", lambda n, data, tag: list(range(n)))
    console = SimpleNamespace(print=lambda *a, **k: None)
    report = asyncio.run(
        bench_compare.run_compare(
            Settings(),
            setting="STREAMFUSE_X",
            values=["a", "b"],
            rate=5.0,
            messages=3,
            rounds=1,
            out_dir=tmp_path,
            console=console,
            warm_messages=7,
        )
    )
    assert [r["label"] for r in started] == ["warm-up", "STREAMFUSE_X=a #1", "STREAMFUSE_X=b #1"]
    assert started[0]["n"] == 7 and started[0]["rate"] is None
    assert "STREAMFUSE_X" not in started[0]["env"] and started[1]["env"]["STREAMFUSE_X"] == "a"
    assert report["warm_messages"] == 7
    assert {v: len(rs) for v, rs in report["runs"].items()} == {"a": 1, "b": 1}

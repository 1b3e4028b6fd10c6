"""The bench's CPU and memory accounting (no broker, no workers)."""

import asyncio
import subprocess
import sys
import threading
import time

import psutil

from agents.bench import Pipeline, cpu_seconds, memory_growth, run_lanes
from streams.cli import _cores, _idle, _rss_row
from streams.settings import Settings


def test_cpu_seconds_grow_with_the_work_a_process_does():
    me = psutil.Process()
    before = cpu_seconds({"me": me})["me"]
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds({"me": me})["me"] > before


def test_a_process_that_has_ended_is_left_out():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    handle = psutil.Process(child.pid)
    child.wait()
    assert cpu_seconds({"ended": handle, "me": psutil.Process()}).keys() == {"me"}


def test_cores_lists_the_busiest_process_first():
    run = {"cpu_cores": {"bench": 0.05, "infer": 1.2, "broker": 0.36}}
    assert _cores(run) == "infer 1.20 · broker 0.36 · bench 0.05"


def test_idle_cores_measure_each_worker_but_not_the_sleeping_bench(tmp_path, monkeypatch):
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    sleepy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pipe = Pipeline(Settings(state_dir=tmp_path), ["infer"], {}, tmp_path)
        procs = {
            "busy": psutil.Process(busy.pid),
            "sleepy": psutil.Process(sleepy.pid),
            "bench": psutil.Process(),
        }
        monkeypatch.setattr(pipe, "processes", lambda: dict(procs))
        cores = asyncio.run(pipe.idle_cores(1.0))
    finally:
        busy.kill()
        sleepy.kill()
    assert cores.keys() == {"busy", "sleepy"}
    assert cores["busy"] > 0.3  # a spinning process, even on a shared machine
    assert cores["sleepy"] < 0.05


def test_idle_lists_the_busiest_process_first():
    assert _idle({"infer": 0.042, "broker": 0.15}) == "broker 0.150 · infer 0.042"
    assert _idle({}) == "-"


def test_memory_growth_compares_windows_not_single_samples():
    # flat around 1,000 MB with a high last sample: the windows see no growth
    series = [1000.0 + (37 * i) % 100 for i in range(100)] + [1200.0]
    m = memory_growth({"infer": series})["infer"]
    assert abs(m["growth"]) < 0.02
    assert m["sample_growth"] > 0.1
    assert m["peak_mb"] == 1200.0


def test_memory_growth_sees_a_steady_climb():
    series = [1000.0 + 5 * i for i in range(100)]  # +50% over the run
    m = memory_growth({"infer": series})["infer"]
    assert m["growth"] > 0.3
    assert m["after_warmup_mb"] < m["end_mb"]


def test_memory_growth_skips_workers_with_too_few_samples():
    assert memory_growth({"infer": [1.0] * 9}) == {}


def test_the_rss_row_shows_both_measures_and_reads_older_runs():
    new = {"after_warmup_mb": 1401.2, "end_mb": 1415.0, "growth": 0.0098, "sample_growth": 0.1011}
    assert _rss_row(new) == "1401 -> 1415 MB (+1.0%); one sample to the last: +10.1%"
    old = {"after_warmup_mb": 1302.7, "end_mb": 1434.4, "growth": 0.1011}
    assert _rss_row(old) == "1303 -> 1434 MB (+10.1%)"


def _recording_jobs(keys: list[str], hold_s: float = 0.02):
    lock = threading.Lock()
    running: list[str] = []
    seen = {"max": 0, "same_key": False, "done": []}

    def job(key: str):
        def run() -> None:
            with lock:
                seen["same_key"] |= key in running
                running.append(key)
                seen["max"] = max(seen["max"], len(running))
            time.sleep(hold_s)
            with lock:
                running.remove(key)
                seen["done"].append(key)

        return run

    return [(k, job(k)) for k in keys], seen


def test_run_lanes_runs_every_job_never_two_of_one_model_at_once():
    jobs, seen = _recording_jobs(["a", "a", "a", "b", "b", "c"])
    run_lanes(jobs, 2)
    assert sorted(seen["done"]) == ["a", "a", "a", "b", "b", "c"]
    assert seen["max"] == 2
    assert not seen["same_key"]


def test_run_lanes_with_one_lane_runs_in_order():
    jobs, seen = _recording_jobs(["b", "a", "c"], hold_s=0)
    run_lanes(jobs, 1)
    assert seen["done"] == ["b", "a", "c"] and seen["max"] == 1

"""The bench's CPU and memory accounting (no broker, no workers)."""

import subprocess
import sys

import psutil

from agents.bench import cpu_seconds, memory_growth
from streams.cli import _cores, _rss_row


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

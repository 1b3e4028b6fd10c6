"""The bench's CPU attribution (no broker, no workers)."""

import subprocess
import sys

import psutil

from agents.bench import cpu_seconds
from streams.cli import _cores


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

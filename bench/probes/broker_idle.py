"""How much CPU an idle local broker uses, by JVM thread, with N extra partitions.

    .venv/bin/python bench/probes/broker_idle.py --topics 0 30 120

For each count, starts a fresh local broker in a temporary state directory, creates that many
8-partition topics, lets it settle, and reports the cores its threads used over the window
(from /proc, Linux only). No client is attached during the window: this is the broker's
own cost per partition, which every run on that broker pays.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from streams import broker
from streams.admin import broker_partitions, ensure_topics
from streams.settings import Settings


def thread_ticks(pid: int) -> dict[str, tuple[str, int]]:
    """Per thread id: (name, user + system clock ticks)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = (name, int(fields[11]) + int(fields[12]))
    return out


def cores_by_thread(pid: int, seconds: float) -> dict[str, float]:
    """Cores each thread name used over ``seconds``."""
    hz = os.sysconf("SC_CLK_TCK")
    before = thread_ticks(pid)
    time.sleep(seconds)
    after = thread_ticks(pid)
    used: collections.Counter[str] = collections.Counter()
    for tid, (name, ticks) in after.items():
        used[name] += ticks - before.get(tid, (name, 0))[1]
    return {name: round(t / hz / seconds, 3) for name, t in used.most_common()}


def measure(topics: int, settle: float, seconds: float, jit: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as state:
        s = Settings(state_dir=Path(state), broker_jit=jit, topic_prefix="probe.")
        broker.start(s)
        try:
            names = [f"probe.t{i}" for i in range(topics)]
            if names:
                asyncio.run(ensure_topics(s, names))
            partitions = asyncio.run(broker_partitions(s))
            time.sleep(settle)
            pid = broker.read_pid(s)
            assert pid is not None
            threads = cores_by_thread(pid, seconds)
        finally:
            broker.stop(s)
    total = round(sum(threads.values()), 3)
    return {"topics": topics, "partitions": partitions, "cores": total, "threads": threads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topics", type=int, nargs="+", default=[0, 30, 120], help="extra topics per run")
    ap.add_argument("--settle", type=float, default=20.0, help="seconds before the window")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the window")
    ap.add_argument("--jit", choices=["quick", "full"], default="quick")
    args = ap.parse_args()
    for n in args.topics:
        r = measure(n, args.settle, args.seconds, args.jit)
        top = ", ".join(f"{k} {v}" for k, v in list(r["threads"].items())[:5])  # type: ignore[union-attr]
        print(f"{r['topics']} topics, {r['partitions']} partitions: {r['cores']} cores ({top})", flush=True)


if __name__ == "__main__":
    main()

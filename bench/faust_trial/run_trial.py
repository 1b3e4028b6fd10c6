"""Kill-mid-stream delivery trial: Faust vs plain aiokafka pass-through on a real Kafka broker.

Per run (fresh topics + fresh consumer group):
  1. create <in> and <out> topics (8 partitions each); start 2 worker processes; wait for the
     group to be Stable with 2 members;
  2. produce N ids (acks=all) at a steady RATE/s, round-robin over the 8 partitions;
  3. every KILL_EVERY s SIGKILL one of the 2 workers (alternating) and restart it at once;
  4. wait until the group's committed offsets reach the input end offsets (everything
     consumed is committed) and the output stops changing, then count distinct ids in
     <out> vs sent -> lost, and output records beyond one per id -> duplicates.
Prints a table and writes results JSON.

Usage (broker from start_broker.sh on 127.0.0.1:29092):
  /work/main/.venv/bin/python bench/faust_trial/run_trial.py --impls faust,aiokafka --repeats 2
"""

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
PARTITIONS = 8


def free_port(start: int) -> int:
    p = start
    while True:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
                return p
            except OSError:
                p += 1


class Worker:
    def __init__(self, impl, slot, env, logdir, python, web_port):
        self.impl, self.slot, self.env, self.logdir, self.python = impl, slot, env, logdir, python
        self.web_port = web_port
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        # kept open for the child's lifetime: the worker process writes to it
        log = open(os.path.join(self.logdir, f"w{self.slot}.{self.starts}.log"), "wb")  # noqa: SIM115
        self.client_id = f"trial-w{self.slot}-{self.starts}"
        env = dict(
            self.env,
            TRIAL_DATADIR=os.path.join(self.logdir, f"data-w{self.slot}"),
            TRIAL_CLIENT_ID=self.client_id,
        )
        if self.impl == "faust":
            cmd = [
                self.python,
                os.path.join(HERE, "faust_passthrough.py"),
                "worker",
                "-l",
                "info",
                "--web-port",
                str(self.web_port),
            ]
        else:
            cmd = [self.python, os.path.join(HERE, "aiokafka_passthrough.py")]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.logdir)
        log.close()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()


async def group_members(admin, group):
    """(state, [client_id, ...]) of the group's current members."""
    try:
        desc = await admin.describe_consumer_groups([group])
        g = desc[0].groups[0]
        return g[2], [m[1] for m in g[5]]
    except Exception:
        return None, []


async def group_state(admin, group):
    try:
        desc = await admin.describe_consumer_groups([group])
        g = desc[0].groups[0] if hasattr(desc[0], "groups") else None
    except Exception:
        return None, 0
    if g is None:
        return None, 0
    # DescribeGroupsResponse tuple: (error_code, group_id, state, protocol_type, protocol, members[, ...])
    return g[2], len(g[5])


async def committed(admin, group, topic):
    try:
        offs = await admin.list_consumer_group_offsets(group)
    except Exception:
        return {}
    return {tp.partition: om.offset for tp, om in offs.items() if tp.topic == topic}


async def run_one(args, impl, run_no, python):
    tag = f"{impl}-{run_no}-{int(time.time())}"
    in_t, out_t, group = f"trial.in.{tag}", f"trial.out.{tag}", f"trial-{tag}"
    logdir = os.path.join(args.logroot, tag)
    os.makedirs(logdir, exist_ok=True)
    bootstrap = args.bootstrap
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(in_t, PARTITIONS, 1), NewTopic(out_t, PARTITIONS, 1)])
    env = dict(
        os.environ,
        TRIAL_BROKER=f"kafka://{bootstrap}",
        TRIAL_BOOTSTRAP=bootstrap,
        TRIAL_IN=in_t,
        TRIAL_OUT=out_t,
        TRIAL_GROUP=group,
        PYTHONUNBUFFERED="1",
    )
    workers = []
    port = args.web_port_base
    for slot in range(2):
        port = free_port(port)
        workers.append(Worker(impl, slot, env, logdir, python, port))
        port += 1
    t0 = time.monotonic()
    for w in workers:
        w.start()
    # wait for a stable 2-member group
    state, members = None, 0
    while time.monotonic() - t0 < 120:
        state, members = await group_state(admin, group)
        if state == "Stable" and members == 2:
            break
        await asyncio.sleep(0.5)
    join_s = time.monotonic() - t0
    print(f"[{tag}] group {state} with {members} members after {join_s:.1f}s", flush=True)

    counts = collections.Counter()
    last_change = [time.monotonic()]
    max_stall = [0.0]
    stall_watch = [True]

    async def count_output():
        c = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await c.start()
        c.assign([TopicPartition(out_t, p) for p in range(PARTITIONS)])
        await c.seek_to_beginning()
        try:
            while True:
                batch = await c.getmany(timeout_ms=200)
                now = time.monotonic()
                n = 0
                for recs in batch.values():
                    for r in recs:
                        counts[r.value] += 1
                        n += 1
                if n:
                    if stall_watch[0]:
                        max_stall[0] = max(max_stall[0], now - last_change[0])
                    last_change[0] = now
        finally:
            await c.stop()

    counter_task = asyncio.create_task(count_output())

    send_errors = [0]
    produce_done = asyncio.Event()

    async def produce():
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await p.start()
        futs = []
        start = time.monotonic()
        step = 10
        for i in range(0, args.n, step):
            target = start + i / args.rate
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for j in range(i, min(i + step, args.n)):
                futs.append(await p.send(in_t, value=str(j).encode(), partition=j % PARTITIONS))
        for f in asyncio.as_completed(futs):
            try:
                await f
            except Exception:
                send_errors[0] += 1
        await p.stop()
        produce_done.set()
        return time.monotonic() - start

    kill_log = []

    async def killer():
        last_kill = time.monotonic()
        for k in range(args.kills):
            await asyncio.sleep(max(0.0, last_kill + args.kill_every - time.monotonic()))
            w = workers[k % 2]
            waited = 0.0
            if args.gate_kills:
                # only kill a worker that is a member of a Stable group together with its peer
                # (i.e. it owns partitions and is mid-stream), not one still starting up
                g0 = time.monotonic()
                while time.monotonic() - g0 < 60:
                    st, cids = await group_members(admin, group)
                    if st == "Stable" and sorted(cids) == sorted(x.client_id for x in workers):
                        break
                    await asyncio.sleep(0.2)
                waited = time.monotonic() - g0
            w.kill()
            last_kill = time.monotonic()
            kill_log.append({"t": round(last_kill - tp0, 2), "slot": w.slot, "gate_wait_s": round(waited, 1)})
            w.start()

    last_change[0] = time.monotonic()
    tp0 = time.monotonic()
    prod_task = asyncio.create_task(produce())
    kill_task = asyncio.create_task(killer())
    produce_s = await prod_task
    await kill_task
    kills_done_s = time.monotonic() - tp0
    stall_watch[0] = False

    # drain: committed offsets == input end offsets, output unchanged for settle_s
    ec = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await ec.start()
    end = await ec.end_offsets([TopicPartition(in_t, p) for p in range(PARTITIONS)])
    end = {tp.partition: o for tp, o in end.items()}
    await ec.stop()
    drained = False
    d0 = time.monotonic()
    lag = None
    while time.monotonic() - d0 < args.drain_timeout:
        com = await committed(admin, group, in_t)
        lag = sum(end[p] - com.get(p, 0) for p in range(PARTITIONS))
        if lag == 0 and time.monotonic() - last_change[0] > args.settle_s:
            drained = True
            break
        await asyncio.sleep(0.5)
    drain_s = time.monotonic() - d0
    final_state, final_members = await group_state(admin, group)
    for w in workers:
        w.stop()
    await asyncio.sleep(1.0)
    counter_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await counter_task
    await admin.close()

    sent = {str(i).encode() for i in range(args.n)}
    got = set(counts)
    lost = sorted(int(x) for x in sent - got)
    unexpected = len(got - sent)
    total_out = sum(counts.values())
    dups = total_out - len(got & sent)
    # scan worker logs
    findings = collections.Counter()
    samples = {}
    pats = {
        "traceback": r"Traceback",
        "error_lines": r"\bERROR\b|\[\^-*ERROR|\bError\b",
        "address_in_use": r"[Aa]ddress already in use",
        "rebalance_lines": r"[Rr]ebalanc",
        "commit_failed": r"commit failed|CommitFailed",
        "discarded_commit": r"Discarded commit",
        "timeout": r"[Tt]imed? ?out",
    }
    for fn in sorted(os.listdir(logdir)):
        if not fn.endswith(".log"):
            continue
        with open(os.path.join(logdir, fn), errors="replace") as fh:
            for line in fh:
                for k, pat in pats.items():
                    if re.search(pat, line):
                        findings[k] += 1
                        if k in ("traceback", "error_lines", "address_in_use") and k not in samples:
                            samples[k] = f"{fn}: {line.strip()[:300]}"
    res = {
        "impl": impl,
        "run": run_no,
        "tag": tag,
        "n_sent": args.n,
        "send_errors": send_errors[0],
        "distinct_out": len(got & sent),
        "lost": len(lost),
        "lost_ids_sample": lost[:50],
        "total_out": total_out,
        "duplicates": dups,
        "dup_ids": sum(1 for v in counts.values() if v > 1),
        "unexpected_values": unexpected,
        "kills": len(kill_log),
        "kill_times_s": kill_log,
        "group_join_s": round(join_s, 1),
        "produce_s": round(produce_s, 1),
        "kills_done_s": round(kills_done_s, 1),
        "drained": drained,
        "drain_s": round(drain_s, 1),
        "final_lag": lag,
        "final_group_state": final_state,
        "final_members": final_members,
        "max_output_stall_s": round(max_stall[0], 1),
        "log_findings": dict(findings),
        "log_samples": samples,
        "logdir": logdir,
    }
    print(
        f"[{tag}] lost={res['lost']} dups={dups} distinct={res['distinct_out']}/{args.n} "
        f"drained={drained} drain_s={res['drain_s']} max_stall={res['max_output_stall_s']}s "
        f"findings={dict(findings)}",
        flush=True,
    )
    return res


async def amain(args):
    results = []
    impls = args.impls.split(",")
    for r in range(1, args.repeats + 1):
        for impl in impls:
            python = args.faust_python if impl == "faust" else args.aiokafka_python
            results.append(await run_one(args, impl, r, python))
            with open(args.out, "w") as fh:
                json.dump({"config": vars(args), "results": results}, fh, indent=2)
    hdr = (
        f"{'impl':9} {'run':>3} {'sent':>6} {'distinct':>8} {'lost':>5} {'dups':>6} {'kills':>5}"
        f" {'drained':>7} {'drain_s':>7} {'stall_s':>7}"
    )
    print("\n" + hdr)
    print("-" * len(hdr))
    for x in results:
        print(
            f"{x['impl']:9} {x['run']:>3} {x['n_sent']:>6} {x['distinct_out']:>8} {x['lost']:>5} "
            f"{x['duplicates']:>6} {x['kills']:>5} {x['drained']!s:>7} {x['drain_s']:>7} "
            f"{x['max_output_stall_s']:>7}"
        )
    print(f"\nresults -> {args.out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:29092")
    ap.add_argument("--impls", default="faust,aiokafka")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--kill-every", type=float, default=3.0)
    ap.add_argument(
        "--gate-kills",
        action="store_true",
        help="before each kill wait until both current workers are Stable group members",
    )
    ap.add_argument("--drain-timeout", type=float, default=150.0)
    ap.add_argument("--settle-s", type=float, default=5.0)
    ap.add_argument("--web-port-base", type=int, default=36066)
    ap.add_argument("--faust-python", default=sys.executable)
    ap.add_argument("--aiokafka-python", default=sys.executable)
    ap.add_argument("--logroot", default="/tmp/faust_trial_runs")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    asyncio.run(amain(ap.parse_args()))


if __name__ == "__main__":
    main()

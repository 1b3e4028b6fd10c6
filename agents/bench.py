"""`streamfuse bench`: the performance harness, all parts in one run on the real broker.

1. ceiling      the message mix through the selected models in a tight in-process loop
2. saturation   N messages through the whole pipeline: throughput, latency percentiles
3. naive        the same pipeline, per message and per model (batch 1, no shared encoder)
4. load         latency percentiles at 50% and 80% of the saturation rate
5. scale-out    a fixed-time test model with 1, 2 and 4 infer workers
6. stages       per-stage cost from the stage timestamps results carry
plus allocation overhead per message, the recogniser's own throughput, and worker memory.

It lives beside the stages because it drives them: the CLI is its only caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
from aiokafka import AIOKafkaProducer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streams.admin import broker_partitions, delete_prefixed_topics, ensure_topics, model_topics
from streams.io import read_topic
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
BIG_BUDGET = {"budget_ms": 600_000}  # saturation runs queue deeply: nothing may expire


def message_mix(n: int, data_dir: Path, run: str, tasks: list[str] | None = None) -> list[dict]:
    """``n`` messages cycling over the bundled financial and chat feeds (mixed 50/50)."""
    fin = [orjson.loads(x) for x in (data_dir / "demo" / "financial_news.jsonl").read_bytes().splitlines()]
    chat = [orjson.loads(x) for x in (data_dir / "demo" / "support_chat.jsonl").read_bytes().splitlines()]
    out = []
    for i in range(n):
        src = (fin if i % 2 == 0 else chat)[(i // 2) % (len(fin) if i % 2 == 0 else len(chat))]
        msg = {
            "id": f"{run}-{i:06d}",
            "text": src["text"],
            "source": src["source"],
            "key": src["key"],
            "meta": dict(BIG_BUDGET),
        }
        if tasks:
            msg["tasks"] = tasks
        out.append(msg)
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    qs = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return {"p50": round(qs[49], 1), "p95": round(qs[94], 1), "p99": round(qs[98], 1)}


# The recommended layout for 2 cores: the models in one process, the light stages in another.
LAYOUT = ["infer", "recognize,fuse,monitor"]
IDLE_SECONDS = 20.0  # the idle measurement before the saturation run
WORKER_ENV = {"STREAMFUSE_TORCH_THREADS": "2"}


@dataclass
class RunResult:
    name: str
    messages: int
    seconds: float
    throughput: float
    latency_ms: dict[str, float]
    partial: int
    stage_ms: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, list[float]] = field(default_factory=dict)
    cpu_busy: float | None = None  # mean share of the machine's CPU in use during the run
    # cores each process used on average during the run: the workers (by roles), the local
    # broker, and the bench itself (producer and result reader), which share the machine
    cpu_cores: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """Worker processes on a fresh topic prefix."""

    def __init__(
        self, settings: Settings, layout: list[str], env: dict[str, str], log_dir: Path, console=None
    ):
        self.prefix = f"b{uuid.uuid4().hex[:6]}."
        self.settings = settings.model_copy(update={"topic_prefix": self.prefix})
        self.topics = Topics(self.prefix)
        self.layout = layout
        self.env = {
            **os.environ,
            "STREAMFUSE_TOPIC_PREFIX": self.prefix,
            "STREAMFUSE_STATE_DIR": str(settings.state_dir),
            **env,
        }
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.console = console  # progress bars go here (None: no bars)

    async def start(self) -> None:
        from models.registry import Registry

        reg = Registry.load(include_test=True)
        await ensure_topics(self.settings, model_topics(self.topics, reg))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for i, roles in enumerate(self.layout):
            log = open(self.log_dir / f"{self.prefix}{i}.log", "ab")  # noqa: SIM115
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker", "--roles", roles],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
            )
            log.close()
            self.procs.append((roles, proc))

    def stop(self) -> None:
        for _, p in self.procs:
            if p.poll() is None:
                p.terminate()
        for _, p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()

    def processes(self) -> dict[str, psutil.Process]:
        """The processes a run's CPU goes to, by name: each worker, the broker, the bench."""
        from streams.broker import read_pid

        out = {}
        for roles, p in self.procs:
            with contextlib.suppress(psutil.Error):
                out[roles] = psutil.Process(p.pid)
        broker = read_pid(self.settings)
        if broker is not None:
            with contextlib.suppress(psutil.Error):
                out["broker"] = psutil.Process(broker)
        out["bench"] = psutil.Process()
        return out

    def rss_mb(self) -> dict[str, float]:
        out = {}
        for roles, p in self.procs:
            with contextlib.suppress(psutil.Error):
                out[f"{roles}#{p.pid}"] = psutil.Process(p.pid).memory_info().rss / 2**20
        return out

    async def idle_cores(self, seconds: float) -> dict[str, float]:
        """Cores each process uses with no traffic, over ``seconds``: the pipeline's fixed
        cost (polls, heartbeats, load reports), which every load pays on top of the models."""
        procs = self.processes()
        del procs["bench"]  # the bench is asleep here
        cpu0 = cpu_seconds(procs)
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        return cores_used(cpu0, cpu_seconds(procs), time.monotonic() - t0, digits=3)

    async def run(self, msgs: list[dict], rate: float | None, name: str, timeout: float = 1800) -> RunResult:
        """Produce ``msgs`` (``ts`` stamped at send time), wait for every result."""
        want = {m["id"] for m in msgs}
        got: dict[str, tuple[int, dict]] = {}
        ready = asyncio.Event()
        done = asyncio.Event()
        rss: dict[str, list[float]] = defaultdict(list)
        cpu: list[float] = []

        async def collect() -> None:
            async for rec in read_topic(
                self.settings, self.topics.results, from_beginning=False, ready=ready
            ):
                v = rec["value"]
                if isinstance(v, dict) and v.get("id") in want and v["id"] not in got:
                    got[v["id"]] = (rec["timestamp"], v)
                    if progress is not None:
                        progress.advance(bar_task)
                    if len(got) == len(want):
                        done.set()
                        return

        async def sample() -> None:
            psutil.cpu_percent()  # starts the interval the next call measures
            while not done.is_set():
                for k, v in self.rss_mb().items():
                    rss[k].append(round(v, 1))
                await asyncio.sleep(1)
                cpu.append(psutil.cpu_percent())

        progress = (
            Progress(
                TextColumn(f"   {name}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            if self.console is not None
            else None
        )
        bar_task = progress.add_task(name, total=len(want)) if progress is not None else None
        if progress is not None:
            progress.start()
        collector = asyncio.create_task(collect())
        sampler = asyncio.create_task(sample())
        await ready.wait()
        producer = AIOKafkaProducer(**self.settings.client_kwargs(), linger_ms=5, acks=1)
        await producer.start()
        procs = self.processes()
        cpu0 = cpu_seconds(procs)
        t0 = time.monotonic()
        try:
            futs = []
            for i, m in enumerate(msgs):
                if rate:
                    delay = t0 + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                m["ts"] = int(time.time() * 1000)
                futs.append(await producer.send(self.topics.input, orjson.dumps(m), key=m["key"].encode()))
                if len(futs) >= 1000:
                    await asyncio.gather(*futs)
                    futs.clear()
            await asyncio.gather(*futs)
        finally:
            await producer.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)
        elapsed = time.monotonic() - t0
        cpu1 = cpu_seconds(procs)
        done.set()
        collector.cancel()
        sampler.cancel()
        if progress is not None:
            progress.stop()
        for t in (collector, sampler):
            with contextlib.suppress(asyncio.CancelledError):
                await t
        results = [v for _, v in got.values()]
        lat = [ts - v["ts"] for ts, v in got.values()]
        stage = defaultdict(list)
        for r in results:
            st = r.get("stage_ts", {})
            if "recognized" in st:
                stage["ingest_to_recognized"].append(st["recognized"] - r["ts"])
            if "fused" in st and "recognized" in st:
                stage["recognized_to_fused"].append(st["fused"] - st["recognized"])
            lm = r.get("latency_ms", {})
            if "queue" in lm:
                stage["model_queue"].append(lm["queue"])
            if "model" in lm:
                stage["model_batch"].append(lm["model"])
        return RunResult(
            name=name,
            messages=len(got),
            seconds=round(elapsed, 2),
            throughput=round(len(got) / elapsed, 1) if elapsed else 0.0,
            latency_ms=percentiles(lat),
            partial=sum(1 for r in results if r.get("partial")),
            stage_ms={k: round(statistics.median(v), 2) for k, v in stage.items() if v},
            rss_mb=dict(rss),
            cpu_busy=round(statistics.mean(cpu) / 100, 3) if cpu else None,
            cpu_cores=cores_used(cpu0, cpu1, elapsed) if elapsed else {},
        )


def cores_used(
    before: dict[str, float], after: dict[str, float], seconds: float, digits: int = 2
) -> dict[str, float]:
    """Cores each process used between two ``cpu_seconds`` readings ``seconds`` apart
    (processes in both readings only)."""
    return {k: round((after[k] - before[k]) / seconds, digits) for k in before.keys() & after.keys()}


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    """User + system CPU seconds so far of each process (those that have exited are left out)."""
    out = {}
    for name, p in procs.items():
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[name] = t.user + t.system
    return out


async def warm(pipe: Pipeline, data_dir: Path, tasks: list[str] | None = None) -> None:
    """Wait until every stage answers (groups joined, models loaded)."""
    await pipe.run(message_mix(40, data_dir, f"warm{uuid.uuid4().hex[:4]}", tasks), None, "warm-up", 300)


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    layout: list[str],
    env: dict[str, str],
    logs: Path,
    console,
    warm_tasks: list[str] | None = None,
) -> AsyncIterator[Pipeline]:
    """A started and warmed-up pipeline of worker processes, stopped on exit."""
    pipe = Pipeline(settings, layout, env, logs, console)
    try:
        await pipe.start()
        await warm(pipe, settings.data_path, warm_tasks)
        yield pipe
    finally:
        pipe.stop()
        try:
            await delete_prefixed_topics(pipe.settings, pipe.prefix)
        except Exception as exc:  # the measurement stands; only the broker keeps the topics
            log.warning("could not delete the run's topics %s*: %s", pipe.prefix, exc)


def ceiling(settings: Settings, n: int) -> dict[str, Any]:
    """Messages/s of the selected models alone, in-process: the best pass over batch sizes
    and over one batch at a time or ``model_concurrency`` batches at once (``run_lanes``)."""
    from agents.infer import run_models
    from agents.planning import Planner
    from agents.recognize import build_planner
    from models.adapters import build_adapter
    from models.registry import Registry
    from streams.records import InputMessage

    registry = Registry.load()
    planner: Planner = build_planner(registry, settings)
    msgs = message_mix(n, settings.data_path, "ceil")
    t0 = time.perf_counter()
    planned = planner.plan_batch(
        [(InputMessage(**{k: v for k, v in m.items()}), m["id"]) for m in msgs], {}, int(time.time() * 1000)
    )
    plan_s = time.perf_counter() - t0
    # The pipeline's serving groups (a backbone's heads and, with share_base, the LoRA models
    # on its base: one pass), so that the ceiling computes what the infer servers compute.
    group_of = registry.groups(coschedule=settings.coschedule, share_base=settings.share_base)
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for p in planned:
        for st in p.subtasks:
            groups[group_of[st.model_id] or st.model_id].append((st.model_id, st.text))
    adapters = {s.id: build_adapter(s) for s in registry if s.task != "domain"}

    def pass_over(batch: int, lanes: int, limit: int | None = None) -> float:
        jobs: list[tuple[str, Callable[[], object]]] = []
        for key, items in groups.items():
            spec_ids = {m for m, _ in items}
            backbone = group_of[next(iter(spec_ids))]
            models = {i: adapters[i] for i in spec_ids} if backbone else {key: adapters[key]}
            todo = items[:limit] if limit else items
            for start in range(0, len(todo), batch):
                chunk = todo[start : start + batch]
                jobs.append((key, functools.partial(run_models, chunk, models, backbone)))
        t0 = time.perf_counter()
        run_lanes(jobs, lanes)
        return time.perf_counter() - t0

    # Untimed first: models load lazily and the first batches pay for it. Then each batch
    # size twice, one batch at a time and as many at once as an infer process computes
    # (``model_concurrency``), and the best pass is the ceiling (on a shared machine a pass
    # can only be slowed, never sped up, by what else runs).
    concurrent = max(1, settings.model_concurrency)
    pass_over(32, 1, limit=64)
    best: dict[str, Any] = {}
    rates: dict[str, list[float]] = defaultdict(list)
    for batch, lanes in [(b, la) for _ in range(2) for b in (32, 128) for la in sorted({1, concurrent})]:
        took = pass_over(batch, lanes)
        rate = n / took
        rates[f"{batch}x{lanes}"].append(round(rate, 1))
        if not best or rate > best["messages_per_s"]:
            best = {
                "batch_size": batch,
                "concurrent_batches": lanes,
                "messages_per_s": round(rate, 1),
                "seconds": round(took, 2),
            }
    best["passes_messages_per_s"] = dict(rates)
    best["allocation_ms_per_message"] = round(plan_s * 1000 / n, 4)
    best["recognizer_messages_per_s"] = round(n / plan_s, 1)
    return best


def run_lanes(jobs: Sequence[tuple[str, Callable[[], object]]], lanes: int) -> None:
    """Run ``(key, job)`` pairs in order on ``lanes`` threads, never two of one key at once.

    The in-process mirror of an infer process: each model computes in its own thread and
    at most ``model_concurrency`` batches compute at once; a model's tokenizer is not
    shared between threads.
    """
    if lanes <= 1:
        for _, job in jobs:
            job()
        return
    pending = list(jobs)
    busy: set[str] = set()
    cond = threading.Condition()

    def lane() -> None:
        while True:
            with cond:
                while True:
                    ready = next((i for i, (k, _) in enumerate(pending) if k not in busy), None)
                    if ready is not None or not pending:
                        break
                    cond.wait()
                if ready is None:
                    return
                key, job = pending.pop(ready)
                busy.add(key)
            try:
                job()
            finally:
                with cond:
                    busy.discard(key)
                    cond.notify_all()

    with ThreadPoolExecutor(max_workers=lanes) as pool:
        for f in [pool.submit(lane) for _ in range(lanes)]:
            f.result()


def allocation_overhead(settings: Settings, n: int = 20_000) -> float:
    """Milliseconds per message for the allocator's scoring alone (all tasks of a message)."""
    from models.registry import Registry
    from models.scoring import allocate

    registry = Registry.load()
    tasks = ["fin_sentiment", "entities", "intent", "sentiment"]
    cands = {t: registry.for_task(t) for t in tasks}
    t0 = time.perf_counter()
    for _ in range(n // 2):
        for t in tasks[:2] if _ % 2 else tasks[2:]:
            allocate(t, cands[t], 2000, {}, settings.ensemble_max)
    return round((time.perf_counter() - t0) * 1000 / (n // 2), 4)


async def run_bench(
    settings: Settings,
    *,
    messages: int,
    naive_messages: int,
    load_seconds: float,
    scale_messages: int,
    scale_hold_ms: int = 250,
    warm_messages: int = 2_000,
    out_dir: Path,
    console,
) -> dict[str, Any]:
    """Run every part; returns the report (also written as JSON and PNG under ``out_dir``).

    Before the saturation run, ``warm_messages`` go through unmeasured, so the broker's JIT
    has compiled its request paths (as in a broker that has been up a while) and the ceiling,
    which keeps its best pass, is compared with a warm pipeline."""
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = out_dir / "logs"
    report: dict[str, Any] = {"machine": machine(), "messages": messages, "warm_messages": warm_messages}
    console.print("[bold]1/6 ceiling[/] (in-process, no Kafka)")
    report["ceiling"] = await asyncio.to_thread(ceiling, settings, min(messages, 1000))
    report["allocation_ms_per_message"] = allocation_overhead(settings)
    layout, env = LAYOUT, WORKER_ENV

    console.print(f"[bold]2/6 saturation[/]: {messages} messages, layout {layout}")
    async with running(settings, layout, env, logs, console) as pipe:
        if warm_messages > 0:
            await pipe.run(message_mix(warm_messages, settings.data_path, "jitwarm"), None, "warm-up")
        report["broker_partitions"] = await broker_partitions(pipe.settings)
        report["idle_cores"] = await pipe.idle_cores(IDLE_SECONDS)
        console.print(f"   idle: {report['idle_cores']} cores")
        sat = await pipe.run(message_mix(messages, settings.data_path, "sat"), None, "saturation")
        report["saturation"] = asdict(sat)
        console.print(f"   {sat.throughput} msg/s, p99 {sat.latency_ms['p99']} ms")
        report["load"] = {}
        for share in (0.5, 0.8):
            rate = max(1.0, sat.throughput * share)
            n = max(50, int(rate * load_seconds))
            console.print(f"[bold]4/6 load[/] at {int(share * 100)}%: {rate:.0f} msg/s for {n} messages")
            res = await pipe.run(
                message_mix(n, settings.data_path, f"load{int(share * 100)}"),
                rate,
                f"load-{int(share * 100)}",
            )
            report["load"][f"{int(share * 100)}%"] = asdict(res)
    report["memory"] = memory_growth(report["saturation"]["rss_mb"])

    console.print(f"[bold]3/6 naive[/]: {naive_messages} messages, batch 1, no shared encoder pass")
    # Naive: batch 1, no shared encoder pass, and every model behind its own server.
    naive_env = {
        **env,
        "STREAMFUSE_BATCH_MAX": "1",
        "STREAMFUSE_COSCHEDULE": "false",
        "STREAMFUSE_INLINE_MAX_MS": "0",
    }
    async with running(settings, layout, naive_env, logs, console) as pipe:
        naive = await pipe.run(message_mix(naive_messages, settings.data_path, "naive"), None, "naive")
        report["naive"] = asdict(naive)

    # The price of exactly-once: the same saturation run with every stage in transactions.
    console.print(f"[bold]2b/6 saturation, exactly-once[/]: {messages} messages, layout {layout}")
    eos_env = {**env, "STREAMFUSE_PROCESSING_GUARANTEE": "exactly_once"}
    async with running(settings, layout, eos_env, logs, console) as pipe:
        eos = await pipe.run(message_mix(messages, settings.data_path, "eos"), None, "saturation-eos")
        report["exactly_once"] = asdict(eos)
        console.print(f"   {eos.throughput} msg/s, p99 {eos.latency_ms['p99']} ms")

    console.print(
        f"[bold]5/6 scale-out[/]: fixed-time test model ({scale_hold_ms} ms per batch of 8), 1, 2, 4 workers"
    )
    report["scale_out"] = await scale_out(settings, scale_messages, scale_hold_ms, logs, console)
    report["ratios"] = ratios(report)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out_dir / f"bench-{stamp}.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    plot(report, out_dir / f"bench-{stamp}.png")
    report["files"] = [str(out_dir / f"bench-{stamp}.json"), str(out_dir / f"bench-{stamp}.png")]
    return report


async def scale_out(
    settings: Settings, messages: int, hold_ms: int, logs: Path, console
) -> dict[str, dict[str, Any]]:
    """Throughput with 1, 2 and 4 infer workers of a model that holds each batch of 8 for
    ``hold_ms`` (a stand-in for a GPU-bound model), and how busy the machine's CPU was.

    Each batch also pays fixed costs (fetch, produce, commit, the round trips between
    stages), so the shorter the hold, the more those weigh; ``cpu_busy`` shows whether the
    2 cores, rather than the coordination, were the limit."""
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as control:
        (Path(control) / "test-fixed").write_text(f"delay {hold_ms / 1000:g}")
        env = {
            "STREAMFUSE_TEST_MODELS": "1",
            "STREAMFUSE_BATCH_MAX": "8",
            "STREAMFUSE_TEST_CONTROL_DIR": control,
        }
        for k in (1, 2, 4):
            layout = ["recognize,fuse"] + ["infer:test-fixed"] * k
            async with running(settings, layout, env, logs, console, ["test_scale"]) as pipe:
                mix = message_mix(messages, settings.data_path, f"scale{k}", ["test_scale"])
                res = await pipe.run(mix, None, f"scale-{k}")
            out[str(k)] = {
                "throughput": res.throughput,
                "seconds": res.seconds,
                "messages": res.messages,
                "hold_ms": hold_ms,
                "cpu_busy": res.cpu_busy,
            }
    return out


def memory_growth(rss: dict[str, list[float]]) -> dict[str, Any]:
    """Per worker: how RSS moved from warm-up to the end of the run.

    ``growth`` compares medians of windows: the tenth of the samples that ends 20% into
    the run (after warm-up) against the last tenth. Single samples swing by ±10% as
    batches of up to 128 come and go, so one sample against another measures where the
    last batch happened to be; ``sample_growth`` is that one-sample ratio, kept for
    comparison with earlier runs.
    """
    out = {}
    for worker, series in rss.items():
        if len(series) < 10:
            continue
        tenth = len(series) // 10
        base = statistics.median(series[tenth : 2 * tenth])
        end = statistics.median(series[-tenth:])
        out[worker] = {
            "after_warmup_mb": round(base, 1),
            "end_mb": round(end, 1),
            "peak_mb": max(series),
            "growth": round(end / base - 1, 4),
            "sample_growth": round(series[-1] / series[len(series) // 5] - 1, 4),
        }
    return out


def ratios(r: dict[str, Any]) -> dict[str, float]:
    sat = r["saturation"]["throughput"]
    scale = r["scale_out"]
    return {
        "saturation_over_ceiling": round(sat / r["ceiling"]["messages_per_s"], 3),
        "saturation_over_naive": round(sat / r["naive"]["throughput"], 2) if r["naive"]["throughput"] else 0,
        "scale_4_over_1": round(scale["4"]["throughput"] / scale["1"]["throughput"], 2),
        **(
            {"exactly_once_over_saturation": round(r["exactly_once"]["throughput"] / sat, 3)}
            if "exactly_once" in r
            else {}
        ),
    }


def machine() -> dict[str, Any]:
    import platform

    import torch

    from models.encoder import bf16_enabled, cpu_has_amx_bf16

    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "amx_bf16": cpu_has_amx_bf16(),  # where STREAMFUSE_BF16 pays (models.encoder.bf16_enabled)
        "bf16": bf16_enabled(),
    }


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    names = ["ceiling", "saturation", "naive"]
    values = [r["ceiling"]["messages_per_s"], r["saturation"]["throughput"], r["naive"]["throughput"]]
    axes[0].bar(names, values, color=["#888", "#2a7", "#c44"])
    axes[0].set_title("throughput (messages/s)")
    runs = {"saturation": r["saturation"], **{f"load {k}": v for k, v in r["load"].items()}}
    x = range(3)
    for i, (name, run) in enumerate(runs.items()):
        lat = run["latency_ms"]
        axes[1].bar([xi + i * 0.25 for xi in x], [lat["p50"], lat["p95"], lat["p99"]], width=0.25, label=name)
    axes[1].set_xticks([xi + 0.25 for xi in x], ["p50", "p95", "p99"])
    axes[1].set_yscale("log")
    axes[1].set_title("produce → result latency (ms)")
    axes[1].legend()
    ks = sorted(r["scale_out"], key=int)
    axes[2].plot([int(k) for k in ks], [r["scale_out"][k]["throughput"] for k in ks], "o-")
    axes[2].set_xticks([int(k) for k in ks])
    axes[2].set_title("scale-out, fixed-time model (messages/s)")
    axes[2].set_xlabel("infer workers")
    fig.suptitle(f"streamfuse bench: {r['machine']['cpus']} CPUs, {r['machine']['device']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

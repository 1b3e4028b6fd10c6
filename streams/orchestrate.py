"""`streamfuse up`: broker (if needed), topics, one worker process per role, and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from rich.console import Console
from rich.live import Live

from streams import broker, kb
from streams.admin import ensure_topics
from streams.io import produce_lines, read_topic
from streams.settings import Settings
from streams.topics import get_topics
from streams.views import DemoView

DEFAULT_LAYOUT = ["recognize", "infer", "fuse", "monitor", "dashboard"]
DEMO_FILES = ["financial_news.jsonl", "support_chat.jsonl", "general.jsonl", "bad_inputs.jsonl"]


@dataclass(slots=True)
class Workers:
    """Worker subprocesses started by `up`."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log_dir: Path | None = None

    def start(self, settings: Settings, roles: str) -> subprocess.Popen[bytes]:
        assert self.log_dir is not None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        name = roles.replace(",", "+").replace(":", "-")
        log = open(self.log_dir / f"worker-{name}.log", "ab")  # noqa: SIM115 - child owns it
        env = os.environ.copy()
        if settings.metrics_port:  # every worker process serves /metrics on its own port
            env["STREAMFUSE_METRICS_PORT"] = str(settings.metrics_port + len(self.procs))
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--roles", roles],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, timeout: float = 20.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
            if p.poll() is None:
                p.kill()
                p.wait()

    def dead(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is not None]


def demo_lines(data_dir: Path) -> list[bytes]:
    """The bundled feeds, interleaved by timestamp; the invalid lines go first."""
    valid: list[tuple[int, bytes]] = []
    bad: list[bytes] = []
    for name in DEMO_FILES:
        for line in (data_dir / "demo" / name).read_bytes().splitlines():
            if not line.strip():
                continue
            if name == "bad_inputs.jsonl":
                bad.append(line)
                continue
            valid.append((orjson.loads(line)["ts"], line))
    valid.sort(key=lambda t: t[0])
    return bad + [line for _, line in valid]


async def _watch(settings: Settings, view: DemoView, ready: asyncio.Event) -> None:
    topics = get_topics(settings)
    kinds = {
        "results": topics.results,
        "dlq": topics.dlq,
        "alerts": topics.alerts,
        "windows": topics.windows,
    }
    events = {k: asyncio.Event() for k in kinds}

    async def follow(kind: str, topic: str) -> None:
        async for rec in read_topic(settings, topic, from_beginning=False, ready=events[kind]):
            if isinstance(rec["value"], dict):
                view.add(kind, rec["value"])

    tasks = [asyncio.create_task(follow(k, t)) for k, t in kinds.items()]
    await asyncio.gather(*(e.wait() for e in events.values()))
    ready.set()
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()


async def _infer_ready(settings: Settings, timeout: float) -> bool:
    """True once an infer worker reports model load on the stats topic (its models are
    loaded and its consumers joined): replaying before that only makes deadlines pass."""
    topic = get_topics(settings).stats
    async for rec in read_topic(settings, topic, from_beginning=False, timeout=timeout):
        if isinstance(rec["value"], dict) and rec["value"].get("model_id"):
            return True
    return False


async def run_demo(
    settings: Settings,
    workers: Workers,
    console: Console,
    rate: float,
    timeout: float,
    linger: float,
) -> bool:
    """Replay the demo feeds through the pipeline with a live view; True if all accounted."""
    console.print("waiting for the model workers to load their models ...")
    if not await _infer_ready(settings, timeout=180):
        console.print("[yellow]no model load report after 180 s; replaying anyway[/]")
    lines = demo_lines(settings.data_path)
    view = DemoView(expected=len(lines))
    ready = asyncio.Event()
    watcher = asyncio.create_task(_watch(settings, view, ready))
    await ready.wait()
    producer = asyncio.create_task(produce_lines(settings, get_topics(settings).input, lines, rate=rate))
    start = time.monotonic()
    done_at: float | None = None
    with Live(view.render(), console=console, refresh_per_second=4, transient=False) as live:
        while time.monotonic() - start < timeout:
            await asyncio.sleep(0.25)
            live.update(view.render())
            if workers.dead():
                console.print(f"[red]a worker exited; see the logs under {workers.log_dir}[/]")
                break
            if view.accounted >= view.expected and done_at is None:
                done_at = time.monotonic()
            if done_at is not None and (time.monotonic() - done_at >= linger):
                break
    await producer
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    console.print(view.summary())
    ok = view.accounted >= view.expected
    if ok:
        console.print(
            f"[green]all {view.expected} messages accounted for: "
            f"{view.n_results} results, {view.n_dlq} dead letters[/]"
        )
    else:
        console.print(
            f"[red]only {view.accounted} of {view.expected} messages accounted for within {timeout:.0f}s[/]"
        )
    return ok


def up(
    settings: Settings,
    *,
    demo: bool,
    layout: list[str],
    rate: float,
    timeout: float,
    linger: float,
    console: Console,
) -> int:
    """Run everything; with ``demo``, replay the feeds and exit, else run until Ctrl-C."""
    started_broker = False
    if settings.embedded and broker.read_pid(settings) is None:
        console.print("starting the local Kafka broker ...")
        info = broker.start(settings)
        started_broker = True
        console.print(f"broker ready at {info.endpoint} (Kafka {info.kafka_version})")
    asyncio.run(ensure_topics(settings, get_topics(settings).core()))
    seeded = asyncio.run(kb.seed(settings, settings.data_path / "kb" / "articles.jsonl"))
    if seeded:
        console.print(f"published {seeded} bundled help-centre articles to {get_topics(settings).kb}")
    workers = Workers(log_dir=settings.state_dir / "logs")
    try:
        for roles in layout:
            workers.start(settings, roles)
        console.print(f"started {len(layout)} workers: {', '.join(layout)} (logs in {workers.log_dir})")
        if any("dashboard" in roles.split(",") for roles in layout):
            console.print(f"dashboard: http://{settings.dashboard_host}:{settings.dashboard_port}/")
        if settings.metrics_port:
            console.print(
                f"metrics: http://{settings.metrics_host}:{settings.metrics_port}"
                f"..{settings.metrics_port + len(layout) - 1}/metrics"
            )
        if demo:
            ok = asyncio.run(run_demo(settings, workers, console, rate, timeout, linger))
            return 0 if ok else 1
        console.print("running; Ctrl-C stops everything")
        # SIGTERM (a supervisor, `kill`) stops the workers and the broker like Ctrl-C does,
        # instead of ending this process and leaving them running.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            while not workers.dead():
                time.sleep(0.5)
        return 0
    finally:
        workers.stop()
        if started_broker:
            broker.stop(settings)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt

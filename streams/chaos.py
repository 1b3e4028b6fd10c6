"""`streamfuse chaos`: a reliability run on the real broker.

Two worker processes per role; a steady stream of messages (a few invalid on purpose); a
random worker SIGKILLed and restarted every few seconds; the broker restarted once. At the
end every acknowledged input id must be in sf.results or sf.dlq. Reports lost, duplicated,
dead-lettered and recovered (in flight at a kill or the broker restart, and still finished).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streams import broker
from streams.admin import ensure_topics, group_lags, model_topics
from streams.io import read_topic
from streams.restore import read_to_end
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

ROLES = ["recognize", "infer", "fuse", "monitor"]
TEXTS = [
    ("newswire", "NVDA", "Nvidia shares jump after data-centre revenue beats forecasts again"),
    ("newswire", "BA", "Boeing cuts delivery outlook as the regulator widens its inspection"),
    ("stocktwits", "TSLA", "$TSLA puts printing today, this recall is a disaster"),
    ("support-chat", None, "my card payment was declined twice and I was still charged"),
    ("support-chat", None, "how long does a transfer to another bank usually take?"),
    ("social", None, "the new phone has a great camera but the battery is awful"),
]


@dataclass
class ChaosReport:
    """What a chaos run measured."""

    messages: int
    guarantee: str
    invalid_sent: int
    acknowledged: int
    workers_per_role: int
    workers_killed: int
    broker_restarts: int
    results: int
    unique_results: int
    dead_lettered: int
    lost: int
    duplicated: int
    recovered: int
    seconds: float
    lost_sample: list[str] = field(default_factory=list)
    # Where lost ids stopped: planned by recognize (so lost in infer or fuse), or not.
    lost_planned: int = 0
    # Finished ids the live watcher had not seen when the topics were re-read at the end
    # (a watcher that fell behind or stalled; the final count is the re-read).
    watcher_missed: int = 0
    drain_seconds: float = 0.0
    # With a loss: per consumer group, the records it had not committed at the end.
    group_lag: dict[str, int] = field(default_factory=dict)
    # With duplicates: where each copy of the first few sits (partition, offset, fused at).
    duplicate_detail: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Row:
    """One record of a topic read afresh: where it sits and its decoded JSON value."""

    partition: int
    offset: int
    timestamp: int
    value: dict


async def _read_rows(settings: Settings, topic: str) -> list[_Row]:
    """Every JSON object record of ``topic`` (every partition, read afresh to its end)."""
    starts: dict[TopicPartition, int | None] = {
        TopicPartition(topic, p): None for p in range(settings.partitions)
    }
    rows = []
    for rec in await read_to_end(settings, starts):
        with contextlib.suppress(orjson.JSONDecodeError, TypeError):
            value = orjson.loads(rec.value)
            if isinstance(value, dict):
                rows.append(_Row(rec.partition, rec.offset, rec.timestamp, value))
    return rows


def _count_ids(rows: list[_Row], field_name: str) -> Counter[str]:
    """How many times each id (the value's ``field_name``) appears in ``rows``."""
    return Counter(row.value[field_name] for row in rows if row.value.get(field_name))


def _duplicate_detail(rows: list[_Row], ids: list[str]) -> list[str]:
    """For each of ``ids``: its copies in ``rows`` as ``id p<partition>: <offset>@<fused s>, ...``
    (fused: the result's fused stage time, seconds after the first copy), in offset order."""
    copies: dict[str, list[tuple[int, int, int]]] = {mid: [] for mid in ids}
    for row in rows:
        if row.value.get("id") in copies:
            fused = (row.value.get("stage_ts") or {}).get("fused", row.timestamp)
            copies[row.value["id"]].append((row.partition, row.offset, fused))
    out = []
    for mid, found in copies.items():
        found.sort()
        first = min((f for _, _, f in found), default=0)
        where = ", ".join(f"p{p}:{o}@+{(f - first) / 1000:.1f}s" for p, o, f in found)
        out.append(f"{mid} {where}")
    return out


async def _recount(settings: Settings, topics: Topics) -> tuple[list[_Row], set[str]]:
    """Every record of sf.results and every dead-lettered id in sf.dlq, read afresh: the
    ground truth the report is built on."""
    results = await _read_rows(settings, topics.results)
    dead = _count_ids(await _read_rows(settings, topics.dlq), "message_id")
    return results, set(dead)


def _message(i: int, run: str, invalid: bool) -> tuple[str, bytes, bytes | None]:
    mid = f"{run}-{i:06d}"
    if invalid:  # a valid id but a wrong-typed text: must end in the DLQ, not vanish
        return mid, orjson.dumps({"id": mid, "text": i}), None
    source, ticker, text = TEXTS[i % len(TEXTS)]
    key = ticker or f"conv-{i % 97}"
    body = {"id": mid, "text": f"{text} (#{i})", "source": source, "key": key}
    return mid, orjson.dumps(body), key.encode()


async def _isolated_run(settings: Settings, tag: str):
    """A run id, settings and topics under a fresh prefix (all topics created), the model
    registry, and the environment for its worker processes."""
    from models.registry import Registry  # model ids decide the per-model topics

    run = f"{tag}{uuid.uuid4().hex[:6]}"
    prefix = f"{run}."
    cfg = settings.model_copy(update={"topic_prefix": prefix})
    topics = Topics(prefix)
    registry = Registry.load()
    await ensure_topics(cfg, model_topics(topics, registry))
    env = {**os.environ, "STREAMFUSE_TOPIC_PREFIX": prefix, "STREAMFUSE_STATE_DIR": str(settings.state_dir)}
    return run, cfg, topics, registry, env


class Fleet:
    """The worker processes, restartable by slot."""

    def __init__(self, env: dict[str, str], log_dir: Path, per_role: int) -> None:
        self.env = env
        self.log_dir = log_dir
        self.slots: list[tuple[str, subprocess.Popen[bytes] | None]] = [
            (role, None) for role in ROLES for _ in range(per_role)
        ]
        log_dir.mkdir(parents=True, exist_ok=True)

    def _spawn(self, i: int) -> None:
        role = self.slots[i][0]
        log = open(self.log_dir / f"{i:02d}-{role}.log", "ab")  # noqa: SIM115 - child owns it
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--roles", role, "--name", f"chaos-{i}"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.slots[i] = (role, proc)

    def start_all(self) -> None:
        for i in range(len(self.slots)):
            self._spawn(i)

    def kill_and_restart(self, rng: random.Random) -> str:
        i = rng.randrange(len(self.slots))
        role, proc = self.slots[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        self._spawn(i)
        return role

    def stop_all(self) -> None:
        for _, proc in self.slots:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in self.slots:
            if proc is None:
                continue
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def run_chaos(
    settings: Settings,
    *,
    messages: int = 10_000,
    rate: float = 250.0,
    per_role: int = 2,
    kill_every: float = 4.0,
    broker_restart: bool = True,
    invalid_every: int = 50,
    drain_timeout: float = 240.0,
    seed: int = 7,
    log_dir: Path | None = None,
    progress=None,
    min_kills: int = 5,
    guarantee: str = "at_least_once",
) -> ChaosReport:
    """Run the reliability scenario and return its report (``guarantee``: the workers'
    processing guarantee, at_least_once or exactly_once)."""
    rng = random.Random(seed)
    run, cfg, topics, _, env = await _isolated_run(settings, "c")
    env = {
        **env,
        "STREAMFUSE_SESSION_TIMEOUT_MS": "6000",
        "STREAMFUSE_HEARTBEAT_INTERVAL_MS": "500",
        "STREAMFUSE_TORCH_THREADS": "1",
        "STREAMFUSE_PROCESSING_GUARANTEE": guarantee,
    }
    fleet = Fleet(env, log_dir or settings.state_dir / "chaos" / run, per_role)
    fleet.start_all()
    seen: dict[str, int] = {}
    dead: set[str] = set()
    acked: set[str] = set()
    in_flight_at_faults: set[str] = set()
    kills = 0
    restarts = 0
    start = time.monotonic()

    records_seen: set[tuple[str, int, int]] = set()

    async def watch(topic: str, is_dlq: bool) -> None:
        # Survives the broker restart: re-reads from the beginning and counts each
        # (partition, offset) once, so a re-read never inflates the duplicate count.
        while True:
            try:
                async for rec in read_topic(cfg, topic):
                    where = (topic, rec["partition"], rec["offset"])
                    if where in records_seen:
                        continue
                    records_seen.add(where)
                    value = rec["value"] or {}
                    mid = value.get("message_id") if is_dlq else value.get("id")
                    if not mid:
                        continue
                    if is_dlq:
                        dead.add(mid)
                    else:
                        seen[mid] = seen.get(mid, 0) + 1
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1)

    watchers = [
        asyncio.create_task(watch(topics.results, False)),
        asyncio.create_task(watch(topics.dlq, True)),
    ]
    invalid_ids: set[str] = set()
    produced_all = asyncio.Event()

    produce_started = asyncio.Event()

    async def produce() -> None:
        producer = AIOKafkaProducer(
            **cfg.client_kwargs(),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=60_000,
        )
        await producer.start()
        pending: list[tuple[str, asyncio.Future]] = []
        bodies: dict[str, tuple[bytes, bytes | None]] = {}
        produce_started.set()
        try:
            t0 = time.monotonic()
            for i in range(messages):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                invalid = invalid_every > 0 and i % invalid_every == invalid_every - 1
                mid, value, key = _message(i, run, invalid)
                if invalid:
                    invalid_ids.add(mid)
                bodies[mid] = (value, key)
                pending.append((mid, await producer.send(topics.input, value, key=key)))
                if progress is not None:
                    progress(1)
                if len(pending) >= 200:
                    await _settle(pending, acked)
            await _settle(pending, acked)
            # Sends that failed while the broker was down are retried, as a producer would.
            for _ in range(5):
                missing = [mid for mid in bodies if mid not in acked]
                if not missing:
                    break
                for mid in missing:
                    value, key = bodies[mid]
                    pending.append((mid, await producer.send(topics.input, value, key=key)))
                await _settle(pending, acked)
        finally:
            await producer.stop()
            produced_all.set()

    async def faults() -> None:
        nonlocal kills, restarts
        await produce_started.wait()
        await asyncio.sleep(kill_every * 2)  # let the groups form first
        t_start = time.monotonic()
        restarted_broker = not broker_restart or not settings.embedded
        while not produced_all.is_set() or kills < min_kills:
            await asyncio.sleep(kill_every)
            in_flight_at_faults.update(acked - seen.keys() - dead)
            if not restarted_broker and time.monotonic() - t_start > messages / rate / 2 - kill_every * 2:
                broker.stop(settings)
                await asyncio.to_thread(broker.start, settings)
                restarts += 1
                restarted_broker = True
                continue
            fleet.kill_and_restart(rng)
            kills += 1

    drain_start = 0.0
    try:
        await asyncio.gather(produce(), faults())
        drain_start = time.monotonic()
        await _drain(cfg, topics, acked, seen, dead, drain_timeout)
        await asyncio.sleep(3)  # late duplicates still count
    finally:
        for w in watchers:
            w.cancel()
        for w in watchers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await w
        fleet.stop_all()
    drained = round(time.monotonic() - drain_start, 1) if drain_start else 0.0
    watched = seen.keys() | dead
    result_rows, dead = await _recount(cfg, topics)
    results = _count_ids(result_rows, "id")
    done = results.keys() | dead
    lost = sorted(acked - done)
    planned = _count_ids(await _read_rows(cfg, topics.plans), "message_id") if lost else Counter()
    lags = await group_lags(cfg, cfg.topic_prefix) if lost else {}
    repeated = sorted(mid for mid, n in results.items() if n > 1)[:5]
    detail = _duplicate_detail(result_rows, repeated)
    return ChaosReport(
        messages=messages,
        guarantee=guarantee,
        invalid_sent=len(invalid_ids),
        acknowledged=len(acked),
        workers_per_role=per_role,
        workers_killed=kills,
        broker_restarts=restarts,
        results=sum(results.values()),
        unique_results=len(results),
        dead_lettered=len(dead & acked),
        lost=len(lost),
        duplicated=sum(n - 1 for n in results.values()),
        recovered=len(in_flight_at_faults & done),
        seconds=round(time.monotonic() - start, 1),
        lost_sample=lost[:20],
        lost_planned=sum(1 for mid in lost if mid in planned),
        watcher_missed=len((done & acked) - watched),
        drain_seconds=drained,
        group_lag={g.removeprefix(cfg.topic_prefix): n for g, n in lags.items() if n},
        duplicate_detail=detail,
    )


async def _drain(
    settings: Settings,
    topics: Topics,
    acked: set[str],
    seen: dict[str, int],
    dead: set[str],
    timeout: float,
    recount_after: float = 20.0,
) -> None:
    """Wait until every acknowledged id is finished or dead-lettered, or ``timeout`` passed.

    The live watchers can fall behind or stall (a reader through a broker restart); after
    ``recount_after`` seconds without progress the topics are read afresh, so a slow
    watcher never makes the wait run out while the pipeline has in fact finished.
    """
    deadline = time.monotonic() + timeout
    progress_at, finished = time.monotonic(), 0
    while time.monotonic() < deadline:
        done = seen.keys() | dead
        if acked <= done:
            return
        if len(done) > finished:
            progress_at, finished = time.monotonic(), len(done)
        elif time.monotonic() - progress_at > recount_after:
            try:
                rows, dlq = await _recount(settings, topics)
            except (TimeoutError, KafkaError) as exc:  # the final recount will say it
                log.warning("recount failed (%s); waiting on", exc)
            else:
                for mid, n in _count_ids(rows, "id").items():
                    seen[mid] = max(seen.get(mid, 0), n)
                dead |= dlq
            progress_at = time.monotonic()
        await asyncio.sleep(1)


async def _settle(pending: list[tuple[str, asyncio.Future]], acked: set[str]) -> None:
    """Await deliveries; an id counts as sent only when the broker acknowledged it."""
    for mid, fut in pending:
        with contextlib.suppress(Exception):
            await fut
            acked.add(mid)
    pending.clear()


@dataclass
class OverloadReport:
    """What an overload run measured, per phase (before, burst, after, recovered)."""

    rate: float
    burst_rate: float
    sent: dict[str, int]
    degraded_share: dict[str, float]
    heavy_model_share: dict[str, float]
    lost: int
    partial: int
    missing: dict[str, int]  # what the partial results lacked, counted
    peak_rss_mb: dict[str, float]
    drain_seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


async def run_overload(
    settings: Settings,
    *,
    rate: float = 8.0,
    burst_rate: float = 400.0,
    before_s: float = 15.0,
    burst_s: float = 5.0,
    after_s: float = 15.0,
    drain_timeout: float = 300.0,
    log_dir: Path | None = None,
) -> OverloadReport:
    """A steady stream, a burst at ``burst_rate``, then the steady stream again
    (``after``: while the backlog drains; ``recovered``: the next ``after_s`` seconds).

    The default burst, 400 msg/s, is about 10x what one worker per role sustains on the
    2-core reference machine (``streamfuse bench`` saturation, 45-55 msg/s), so the models
    really fall behind; a burst of 10x the *steady* rate would not: the pipeline absorbs
    80 msg/s for 10 s within the budgets.

    Reports, per phase, the share of plans that degraded and the share of task outputs
    served by a MiniLM model, the peak RSS of every worker, whether anything was lost, and
    how long after the burst its last result arrived (the drain).
    """
    import psutil

    run, cfg, topics, registry, env = await _isolated_run(settings, "o")
    heavy = {m.id for m in registry if m.backbone or m.kind in ("finetuned", "lora")}
    env = {**env, "STREAMFUSE_STATS_INTERVAL_S": "0.5"}
    fleet = Fleet(env, log_dir or settings.state_dir / "overload" / run, 1)
    fleet.start_all()
    phase_of: dict[str, str] = {}
    seen: dict[str, dict] = {}
    arrived: dict[str, float] = {}
    peak: dict[str, float] = {}

    async def watch() -> None:
        async for rec in read_topic(cfg, topics.results):
            v = rec["value"] or {}
            if v.get("id") in phase_of and v["id"] not in seen:
                seen[v["id"]] = v
                arrived[v["id"]] = time.monotonic()

    async def sample() -> None:
        while True:
            for i, (role, proc) in enumerate(fleet.slots):
                if proc is not None and proc.poll() is None:
                    with contextlib.suppress(psutil.Error):
                        mb = psutil.Process(proc.pid).memory_info().rss / 2**20
                        key = f"{i}-{role}"
                        peak[key] = round(max(peak.get(key, 0.0), mb), 1)
            await asyncio.sleep(0.5)

    watcher, sampler = asyncio.create_task(watch()), asyncio.create_task(sample())
    producer = AIOKafkaProducer(**cfg.client_kwargs(), linger_ms=5)
    await producer.start()
    drain = 0.0
    try:
        await asyncio.sleep(8)  # workers join and warm up
        i = 0
        phases = (
            ("before", rate, before_s),
            ("burst", burst_rate, burst_s),
            ("after", rate, after_s),  # the backlog drains
            ("recovered", rate, after_s),
        )
        for phase, phase_rate, seconds in phases:
            t0 = time.monotonic()
            n = int(phase_rate * seconds)
            for k in range(n):
                delay = t0 + k / phase_rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                mid, value, key = _message(i, run, False)
                phase_of[mid] = phase
                await producer.send(topics.input, value, key=key)
                i += 1
            if phase == "burst":
                burst_end = time.monotonic()
        await producer.flush()
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline and len(seen) < len(phase_of):
            await asyncio.sleep(0.5)
        burst_done = [arrived[m] for m, p in phase_of.items() if p == "burst" and m in arrived]
        drain = round(max(burst_done, default=time.monotonic()) - burst_end, 1)
    finally:
        await producer.stop()
        for t in (watcher, sampler):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        fleet.stop_all()
    sent: dict[str, int] = {}
    degraded: dict[str, int] = {}
    outputs: dict[str, int] = {}
    heavy_used: dict[str, int] = {}
    for mid, phase in phase_of.items():
        sent[phase] = sent.get(phase, 0) + 1
        r = seen.get(mid)
        if r is None:
            continue
        allocs = [o.get("allocation") or {} for o in r.get("outputs", {}).values()]
        degraded[phase] = degraded.get(phase, 0) + any(a.get("degraded") for a in allocs)
        outputs[phase] = outputs.get(phase, 0) + len(allocs)
        served_heavy = sum(bool(set(a.get("models", [])) & heavy) for a in allocs)
        heavy_used[phase] = heavy_used.get(phase, 0) + served_heavy
    return OverloadReport(
        rate=rate,
        burst_rate=burst_rate,
        sent=sent,
        degraded_share={p: round(degraded.get(p, 0) / n, 3) for p, n in sent.items()},
        heavy_model_share={p: round(heavy_used.get(p, 0) / max(outputs.get(p, 0), 1), 3) for p in sent},
        lost=len(set(phase_of) - set(seen)),
        partial=sum(1 for r in seen.values() if r.get("partial")),
        missing=dict(Counter(m for r in seen.values() for m in r.get("missing") or []).most_common()),
        peak_rss_mb=peak,
        drain_seconds=drain,
    )

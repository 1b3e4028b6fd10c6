"""infer: one consumer group per model; dynamic micro-batches; GPU when present.

sf.model.<id> -> sf.predictions (keyed by message id) ; load reports -> sf.stats
A model that raises or hangs produces error Predictions: fusion goes on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pydantic import ValidationError

from agents.kb import start_following
from agents.validate import Where, dead_letter
from models.base import Adapter, ModelOutput
from models.registry import ModelSpec, serving_group
from streams import metrics
from streams.app import Outgoing, StreamApp
from streams.codec import dumps, key_bytes, loads
from streams.records import EntityOut, ModelLoad, Prediction, Subtask
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)
GROUP = "infer"


@dataclass(slots=True)
class Meter:
    """Exponentially weighted batch statistics of one model in this worker, plus the batch
    in flight (the allocator must see a batch that is still running as load).

    Slowness is forgotten while the model is idle (``decay_if_idle``), which invites the
    allocator to send a probe. Until the probe answers, the figures measured before the
    decay stand; the probe's own batch then replaces them.
    """

    per_item_ms: float = 0.0
    batch_ms: float = 0.0
    batch_size: float = 0.0
    items: int = 0
    errors: int = 0
    window_start: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    busy_since: float | None = None
    measured: tuple[float, float] | None = None  # (per item, batch) ms before the decay

    def start(self, n: int, now: float | None = None) -> None:
        """A batch of ``n`` items went to the model."""
        self.in_flight, self.busy_since = n, time.monotonic() if now is None else now

    def finish(self) -> None:
        """The batch in flight ended (with outputs, an error or a timeout)."""
        self.in_flight, self.busy_since = 0, None

    def observe(self, n: int, elapsed_ms: float, alpha: float = 0.3) -> None:
        per_item = elapsed_ms / max(n, 1)
        fresh = (self.items == 0 and self.batch_ms == 0.0) or self.measured is not None
        if fresh:  # the first batch, or the probe after a decay: it is the best evidence
            self.per_item_ms, self.batch_ms, self.batch_size = per_item, elapsed_ms, float(n)
            self.measured = None
        else:
            self.per_item_ms += alpha * (per_item - self.per_item_ms)
            self.batch_ms += alpha * (elapsed_ms - self.batch_ms)
            self.batch_size += alpha * (n - self.batch_size)
        self.items += n

    def probe_wanted(self, lag: int) -> bool:
        """The figures are forgotten ones and nothing is queued or running: one batch may
        be sent to try the model again."""
        return self.measured is not None and self.busy_since is None and lag == 0

    def live(self, lag: int = 0, now: float | None = None) -> tuple[float, float]:
        """(per-item ms, batch ms) as the allocator should see them now.

        Idle: the averages (decayed, if forgotten). With work queued or running: the
        figures measured before any decay (a probe has not answered yet), or more when the
        batch in flight has already run longer than that.
        """
        if self.busy_since is None and lag == 0:
            return self.per_item_ms, self.batch_ms
        per_item, batch = self.measured or (self.per_item_ms, self.batch_ms)
        if self.busy_since is None:
            return per_item, batch
        running_ms = ((time.monotonic() if now is None else now) - self.busy_since) * 1000
        return max(per_item, running_ms / max(self.in_flight, 1)), max(batch, running_ms)

    def decay_if_idle(self, lag: int, idle_s: float, half_life_s: float) -> None:
        """With an empty queue, no batch in flight and none finished in the last ``idle_s``
        seconds, forget slowness with the given half-life.

        The allocator stops sending work to a model that looked slow; without new batches
        its measured latency would never improve, and traffic would never come back. Decay
        lets it be tried again with one probe; if it is still slow, the probe says so.
        """
        if lag == 0 and self.items == 0 and self.busy_since is None and half_life_s > 0:
            if self.measured is None:
                self.measured = (self.per_item_ms, self.batch_ms)
            factor = 0.5 ** (idle_s / half_life_s)
            self.per_item_ms *= factor
            self.batch_ms *= factor

    def take_throughput(self) -> float:
        now = time.monotonic()
        rate = self.items / max(now - self.window_start, 1e-6)
        self.items, self.window_start = 0, now
        return rate


def per_item_at(curve: Mapping[int, float], n: float) -> float:
    """ms per item at batch size ``n`` from a measured curve (batch size -> ms per item):
    linear between measured sizes, flat beyond the smallest and largest."""
    points = sorted(curve.items())
    if not points:
        raise ValueError("empty latency curve")
    if n <= points[0][0]:
        return points[0][1]
    for (n0, v0), (n1, v1) in itertools.pairwise(points):
        if n <= n1:
            return v0 + (v1 - v0) * (n - n0) / (n1 - n0)
    return points[-1][1]


def live_curve(catalog: Mapping[int, float], per_item_ms: float, batch_size: float) -> dict[int, float]:
    """The catalog's latency curve rescaled to pass through this worker's live measurement.

    The catalog knows how per-item cost changes with batch size (measured alone, by
    ``streamfuse eval``); the meter knows how slow the model is here and now (other models
    share the cores). With no live figure the catalog is used as is; with no catalog the
    live figure is taken as flat.
    """
    if per_item_ms <= 0:
        return dict(catalog)
    if not catalog:
        return {max(1, round(batch_size)): per_item_ms}
    scale = per_item_ms / max(per_item_at(catalog, max(batch_size, 1.0)), 1e-9)
    return {n: v * scale for n, v in catalog.items()}


def latency_batch_cap(
    curve: Mapping[int, float], budget_ms: float | None, *, share: float, batch_max: int
) -> int:
    """Most items per batch whose predicted compute time fits ``share`` of ``budget_ms``.

    The predicted time of ``n`` items is ``n * per_item_at(curve, n)``. The cap is the
    largest ``n`` such that every smaller batch fits too (a noisy curve must not let a big
    batch through past a small one that does not fit); at least 1, at most ``batch_max``.
    Nothing to go by (no curve, no budget, ``share <= 0``): ``batch_max``.
    """
    ceiling = max(1, batch_max)
    if share <= 0 or budget_ms is None or not curve:
        return ceiling
    allowed = share * budget_ms
    cap = 1
    for n in range(2, ceiling + 1):
        if n * per_item_at(curve, n) > allowed:
            break
        cap = n
    return cap


def message_budget_ms(subtasks: Sequence[Subtask], grace_ms: int) -> float | None:
    """The smallest latency budget among ``subtasks`` (None when there are none).

    A subtask's deadline is its message's budget plus fuse's grace past ``created_ms``
    (see agents.planning). The whole budget is used, not what is left of it: under a
    backlog the remaining budgets shrink, and shrinking batches would then cut throughput
    exactly when the queue needs it most.
    """
    if not subtasks:
        return None
    return float(max(0, min(st.deadline_ms - grace_ms - st.created_ms for st in subtasks)))


def to_predictions(
    subtasks: Sequence[Subtask],
    outputs: Sequence[ModelOutput],
    *,
    worker: str,
    model_ms: float,
    started_ms: int,
) -> list[Prediction]:
    """Model outputs -> Prediction records (same order as subtasks)."""
    now = int(time.time() * 1000)
    preds = []
    for st, out in zip(subtasks, outputs, strict=True):
        preds.append(
            Prediction(
                message_id=st.message_id,
                task=st.task,
                model_id=st.model_id,
                label=out.label,
                score=float(out.score) if out.score is not None else None,
                probs={k: float(v) for k, v in out.probs.items()} if out.probs else None,
                entities=[EntityOut(**e.to_dict()) for e in out.entities]
                if out.entities is not None
                else None,
                extra=out.extra or None,
                batch_size=len(subtasks),
                queue_ms=float(max(0, started_ms - st.created_ms)),
                model_ms=round(model_ms, 3),
                worker=worker,
                ts=now,
            )
        )
    return preds


def error_predictions(subtasks: Sequence[Subtask], error: str, worker: str) -> list[Prediction]:
    now = int(time.time() * 1000)
    return [
        Prediction(
            message_id=st.message_id,
            task=st.task,
            model_id=st.model_id,
            error=error,
            batch_size=len(subtasks),
            worker=worker,
            ts=now,
        )
        for st in subtasks
    ]


def run_models(
    items: Sequence[tuple[str, str]], adapters: Mapping[str, Adapter], backbone: str | None
) -> list[ModelOutput]:
    """Predict a batch of ``(model id, text)`` items (runs in the model thread).

    A single model predicts the texts directly. A backbone's group gets one pass: heads
    alone share one encoder pass over the batch's distinct texts; with LoRA models in the
    group, every model's rows share one pass of the base (``models.shared_pass``).
    """
    if backbone is None:
        (adapter,) = adapters.values()
        return adapter.predict([text for _, text in items])
    unknown = sorted({m for m, _ in items if m not in adapters})
    if unknown:
        raise KeyError(f"models {unknown} are not in backbone {backbone!r}'s group in this worker")
    if has_lora(adapters):
        from models.shared_pass import get_shared_pass, predict_shared

        return predict_shared(items, adapters, get_shared_pass())  # type: ignore[arg-type]
    texts = list(dict.fromkeys(text for _, text in items))
    row_of = {t: i for i, t in enumerate(texts)}
    encoder = next(iter(adapters.values())).encoder  # type: ignore[attr-defined]
    embeddings = encoder.encode(texts)
    outputs: list[ModelOutput | None] = [None] * len(items)
    by_model: dict[str, list[int]] = defaultdict(list)
    for i, (model_id, _) in enumerate(items):
        by_model[model_id].append(i)
    for model_id, rows in by_model.items():
        head = adapters[model_id]
        outs = head.predict_embeddings(embeddings[[row_of[items[r][1]] for r in rows]])  # type: ignore[attr-defined]
        for r, out in zip(rows, outs, strict=True):
            outputs[r] = out
    return outputs  # type: ignore[return-value]


class ModelServer:
    """Serves one model, or every head of one backbone, from one subtask topic.

    Consumes the topic in micro-batches, predicts in its own thread (a hung model cannot
    block the others or the event loop), publishes predictions, then commits.
    """

    def __init__(
        self,
        app: StreamApp,
        adapters: dict[str, Adapter],
        backbone: str | None = None,
        latency_ms: Mapping[int, float] | None = None,
        gate: asyncio.Semaphore | None = None,
        lane: int | None = None,
    ) -> None:
        self.app = app
        # Lanes of one set share its consumer group (each takes some of the partitions) and
        # report load as workers of their own, which the allocator sums per model.
        self.reporter = app.worker if lane is None else f"{app.worker}/{lane}"
        self.gate = gate  # shared by the servers of one process: batches computing at once
        self.adapters = adapters
        self.backbone = backbone
        self.name = f"backbone.{backbone}" if backbone else next(iter(adapters))
        self.meter = Meter()
        self.latency_ms = dict(latency_ms or {})  # the catalog's ms/item by batch size
        self.budget_ms: float | None = None  # smallest message budget in the last batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{self.name}")

    def batch_cap(self) -> int:
        """Records to take next: ``batch_max``, or fewer when the model's predicted time for
        them would not fit ``batch_budget_share`` of the last batch's smallest budget."""
        s = self.app.settings
        curve = live_curve(self.latency_ms, self.meter.per_item_ms, self.meter.batch_size)
        return latency_batch_cap(curve, self.budget_ms, share=s.batch_budget_share, batch_max=s.batch_max)

    @property
    def topics(self) -> Topics:
        return self.app.topics

    @property
    def topic(self) -> str:
        if self.backbone:
            return self.topics.backbone(self.backbone)
        return self.topics.model(self.name)

    async def run(self) -> None:
        s = self.app.settings
        consumer = await self.app.consumer(
            [self.topic],
            group=f"{s.topic_prefix}{GROUP}.{self.name}",
            max_poll_records=s.batch_max,
        )
        reporter = asyncio.create_task(self._report(consumer))
        try:
            while not self.app.stopping.is_set():
                # One batch per app.batches generator, so that each batch gets the size the
                # model's latency allows now (and the generator's exactly-once batch lock is
                # held until the batch is complete). Records past the cap stay in the
                # consumer's fetch buffer, in order, for the next batch: committing this
                # batch's last offsets never skips one.
                async with contextlib.aclosing(
                    self.app.batches(consumer, self.batch_cap(), s.idle_poll_ms)
                ) as batches:
                    batch = await anext(batches, None)
                    if batch is None:
                        break  # stopping
                    if not batch:
                        continue
                    t0 = time.perf_counter()
                    batch, out = await self.take_turn(consumer, batch)
                    await self.app.complete_batch(consumer, out, batch)
                    metrics.stage_batch("infer", len(batch), time.perf_counter() - t0, self.name)
                    metrics.published("infer", out, self.topics)
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reporter
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def take_turn(self, consumer, batch: list) -> tuple[list, list[Outgoing]]:
        """Wait for a compute slot, then handle ``batch`` with the records that arrived
        while it waited (up to the batch cap): they join this pass instead of waiting a
        whole turn of the gate for the next one. Returns the records handled and the output.
        """
        async with self.gate or contextlib.nullcontext():
            if self.app.settings.gate_top_up:
                batch = batch + await self.app.more(consumer, self.batch_cap() - len(batch))
            return batch, await self.handle(batch)

    async def handle(self, batch) -> list[Outgoing]:
        """Decode, drop expired, predict in the model thread, encode (the caller holds the
        compute slot: :meth:`take_turn`)."""
        worker = self.app.worker
        out: list[Outgoing] = []
        live: list[Subtask] = []
        expired: list[Subtask] = []
        now = int(time.time() * 1000)
        for rec in batch:
            try:
                st = loads(rec.value, Subtask)
            except (ValidationError, ValueError) as exc:
                dl = dead_letter(
                    rec.value,
                    "bad_subtask",
                    f"undecodable subtask: {exc}",
                    "infer",
                    Where(rec.topic, rec.partition, rec.offset),
                )
                out.append(Outgoing(self.topics.dlq, dumps(dl)))
                continue
            (expired if st.deadline_ms < now else live).append(st)
        budget = message_budget_ms([*live, *expired], self.app.settings.deadline_grace_ms)
        if budget is not None:
            self.budget_ms = budget
        preds: list[Prediction] = error_predictions(
            expired, "expired: deadline passed before the model ran", worker
        )
        metrics.model_error(self.name, "expired", len(expired))
        if live:
            preds += await self._predict(live, worker)
        out.extend(Outgoing(self.topics.predictions, dumps(p), key_bytes(p.message_id)) for p in preds)
        return out

    async def _predict(self, live: list[Subtask], worker: str) -> list[Prediction]:
        """Run the model thread on ``live`` under the timeout: predictions, or error ones."""
        started = int(time.time() * 1000)
        t0 = time.perf_counter()
        self.meter.start(len(live))
        try:
            loop = asyncio.get_running_loop()
            outputs = await asyncio.wait_for(
                loop.run_in_executor(
                    self.executor,
                    run_models,
                    [(st.model_id, st.text) for st in live],
                    self.adapters,
                    self.backbone,
                ),
                self.app.settings.model_timeout_s,
            )
            if len(outputs) != len(live):
                raise RuntimeError(f"model returned {len(outputs)} outputs for {len(live)} inputs")
            elapsed = (time.perf_counter() - t0) * 1000
            self.meter.observe(len(live), elapsed)
            metrics.model_batch(self.name, len(live), elapsed / 1000)
            return to_predictions(live, outputs, worker=worker, model_ms=elapsed, started_ms=started)
        except TimeoutError:
            timeout = self.app.settings.model_timeout_s
            self.meter.errors += len(live)
            metrics.model_error(self.name, "timeout", len(live))
            log.error("model %s timed out after %.1fs", self.name, timeout)
            preds = error_predictions(live, f"timeout after {timeout:g}s", worker)
            # The hung call keeps its thread; give the next batches a fresh one.
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{self.name}")
        except Exception as exc:
            self.meter.errors += len(live)
            metrics.model_error(self.name, "error", len(live))
            log.exception("model %s failed on a batch of %d", self.name, len(live))
            preds = error_predictions(live, f"model error: {type(exc).__name__}: {exc}", worker)
        finally:
            self.meter.finish()
        return preds

    async def _report(self, consumer) -> None:
        """Publish live load for every model served here (heads share their backbone's)."""
        interval = self.app.settings.stats_interval_s
        half_life = self.app.settings.load_forget_half_life_s
        while True:
            await asyncio.sleep(interval)
            try:
                lag = await self.app.lag(consumer)
                self.meter.decay_if_idle(lag, interval, half_life)
                throughput = round(self.meter.take_throughput(), 2)
                per_item_ms, batch_ms = self.meter.live(lag)
                measured = self.meter.measured if self.meter.probe_wanted(lag) else None
                now = int(time.time() * 1000)
                loads_out = [
                    ModelLoad(
                        model_id=model_id,
                        worker=self.reporter,
                        lag=lag,
                        per_item_ms=round(per_item_ms, 3),
                        batch_ms=round(batch_ms, 3),
                        batch_size=round(self.meter.batch_size, 2),
                        throughput=throughput,
                        errors=self.meter.errors,
                        probe=measured is not None,
                        measured_per_item_ms=round(measured[0], 3) if measured else None,
                        measured_batch_ms=round(measured[1], 3) if measured else None,
                        ts=now,
                    )
                    for model_id in self.adapters
                ]
                metrics.model_lag(self.name, lag)
                await self.app.publish(
                    [Outgoing(self.topics.stats, dumps(x), key_bytes(x.model_id)) for x in loads_out]
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("load report for %s failed: %s", self.name, exc)


# Adapters that compute with torch (a MiniLM forward pass); only they take the compute gate.
TORCH_ADAPTERS = frozenset({"minilm_head", "minilm_lora", "minilm_full", "mpnet_lora", "kb_retrieval"})


def uses_torch(spec: ModelSpec) -> bool:
    """Whether the model's batches run torch: a head on a backbone or a torch adapter."""
    return spec.backbone is not None or spec.adapter in TORCH_ADAPTERS


def has_lora(adapters: Mapping[str, Adapter]) -> bool:
    """Whether any of ``adapters`` computes its rows in a shared pass (a LoRA model)."""
    return any(hasattr(a, "pass_rows") for a in adapters.values())


@dataclass(slots=True)
class ServingSet:
    """What one model server computes: one model, or a backbone's group (``backbone``)."""

    adapters: dict[str, Adapter]
    backbone: str | None
    latency_ms: dict[int, float]
    torch: bool

    @property
    def shares_pass(self) -> bool:
        """Whether LoRA models are in the set: its batches run the shared pass."""
        return self.backbone is not None and has_lora(self.adapters)

    def warm_up(self) -> list[ModelOutput]:
        """One small batch with a text for every model in the set: the first calls pay for
        lazy loading (and the shared pass registers its LoRA models)."""
        text = "Warm-up: the quarterly results beat expectations."
        return run_models([(m, text) for m in self.adapters], self.adapters, self.backbone)


def serving_sets(
    settings: Settings, specs: Sequence[ModelSpec], adapters: Mapping[str, Adapter]
) -> list[ServingSet]:
    """One set per model outside any group, one per serving group (``models.registry.serving_group``)."""
    sets: list[ServingSet] = []
    grouped: dict[str, dict[str, Adapter]] = defaultdict(dict)
    curves: dict[str, list[dict[int, float]]] = defaultdict(list)
    for spec in specs:
        group = serving_group(spec, coschedule=settings.coschedule, share_base=settings.share_base)
        if group:
            grouped[group][spec.id] = adapters[spec.id]
            curves[group].append(catalog_curve(spec))
        else:
            sets.append(ServingSet({spec.id: adapters[spec.id]}, None, catalog_curve(spec), uses_torch(spec)))
    sets.extend(ServingSet(group, name, slowest_curve(curves[name]), True) for name, group in grouped.items())
    return sets


def servers_for(
    app: StreamApp, specs: Sequence[ModelSpec], adapters: Mapping[str, Adapter]
) -> list[ModelServer]:
    """One server per model outside a group, one per backbone for the models in its group
    (``serving_sets``); a group with LoRA models in it gets a lane per compute slot.

    The models share one compute gate (``model_concurrency``), first come first served: every
    server computes in its own thread, and torch gives each thread its own intra-op pool, so
    on a few cores concurrent batches oversubscribe them. With ``gate_all_models`` off,
    lexicon, rule and linear models bypass the gate: under overload they carry the degraded
    traffic, and in the gate's queue they wait for MiniLM batches; but in steady traffic,
    running them beside two torch batches doubled the p99 (settings, ``gate_all_models``).
    """
    limit = app.settings.model_concurrency
    gate = asyncio.Semaphore(limit) if limit > 0 else None
    servers = []
    for ss in serving_sets(app.settings, specs, adapters):
        own_gate = gate if ss.torch or app.settings.gate_all_models else None
        if ss.shares_pass:
            # All the torch work of the process is in this one set: as many lanes as batches
            # may compute at once, so that the shared pass fills the gate as separate model
            # servers did (one batch at a time leaves the second core idle between ops).
            lanes = max(1, limit or 2)
            servers += [
                ModelServer(app, ss.adapters, ss.backbone, latency_ms=ss.latency_ms, gate=own_gate, lane=k)
                for k in range(lanes)
            ]
        else:
            servers.append(
                ModelServer(app, ss.adapters, ss.backbone, latency_ms=ss.latency_ms, gate=own_gate)
            )
    return servers


def catalog_curve(spec: ModelSpec) -> dict[int, float]:
    """The catalog's measured ms per item by batch size (keys are strings in the catalog)."""
    return {int(k): float(v) for k, v in spec.latency_ms.items() if str(k).isdigit() and float(v) > 0}


def slowest_curve(curves: Sequence[Mapping[int, float]]) -> dict[int, float]:
    """Per batch size, the slowest of several heads' curves (sizes every curve measured).

    Each head's catalog latency is mostly the shared encoder pass, so the slowest head is
    a safe estimate of the backbone's batch."""
    curves = [c for c in curves if c]
    if not curves:
        return {}
    sizes = set.intersection(*(set(c) for c in curves))
    return {n: max(c[n] for c in curves) for n in sorted(sizes)}


async def run(app: StreamApp, specs: Sequence[ModelSpec], adapters: dict[str, Adapter]) -> None:
    """Serve every given model concurrently in this worker (kb models follow ``sf.kb``,
    whose current state is in their index before the first batch)."""
    kb_follower = await start_following(app, adapters)
    try:
        await asyncio.gather(*(s.run() for s in servers_for(app, specs, adapters)))
    finally:
        if kb_follower is not None:
            kb_follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await kb_follower

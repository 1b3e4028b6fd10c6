"""infer: one consumer group per model; dynamic micro-batches; GPU when present.

sf.model.<id> -> sf.predictions (keyed by message id) ; load reports -> sf.stats
A model that raises or hangs produces error Predictions: fusion goes on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pydantic import ValidationError

from agents.validate import Where, dead_letter
from models.base import Adapter, ModelOutput
from models.registry import ModelSpec
from streams import metrics
from streams.app import Outgoing, StreamApp
from streams.codec import dumps, key_bytes, loads
from streams.records import EntityOut, ModelLoad, Prediction, Subtask
from streams.topics import Topics

log = logging.getLogger(__name__)
GROUP = "infer"
MODEL_TIMEOUT_S = 30.0


@dataclass(slots=True)
class Meter:
    """Exponentially weighted batch statistics of one model in this worker."""

    per_item_ms: float = 0.0
    batch_ms: float = 0.0
    batch_size: float = 0.0
    items: int = 0
    errors: int = 0
    window_start: float = field(default_factory=time.monotonic)

    def observe(self, n: int, elapsed_ms: float, alpha: float = 0.3) -> None:
        per_item = elapsed_ms / max(n, 1)
        if self.items == 0 and self.batch_ms == 0.0:
            self.per_item_ms, self.batch_ms, self.batch_size = per_item, elapsed_ms, float(n)
        else:
            self.per_item_ms += alpha * (per_item - self.per_item_ms)
            self.batch_ms += alpha * (elapsed_ms - self.batch_ms)
            self.batch_size += alpha * (n - self.batch_size)
        self.items += n

    def take_throughput(self) -> float:
        now = time.monotonic()
        rate = self.items / max(now - self.window_start, 1e-6)
        self.items, self.window_start = 0, now
        return rate


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


class ModelServer:
    """Serves one model: consumes its subtask topic, batches, predicts, publishes."""

    def __init__(self, app: StreamApp, spec: ModelSpec, adapter: Adapter) -> None:
        self.app = app
        self.spec = spec
        self.adapter = adapter
        self.meter = Meter()
        # One thread per model: a hung model cannot block the others or the event loop.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{spec.id}")

    @property
    def topics(self) -> Topics:
        return self.app.topics

    async def run(self) -> None:
        s = self.app.settings
        consumer = await self.app.consumer(
            [self.topics.model(self.spec.id)],
            group=f"{s.topic_prefix}{GROUP}.{self.spec.id}",
            max_poll_records=s.batch_max,
        )
        reporter = asyncio.create_task(self._report(consumer))
        try:
            async for batch in self.app.batches(consumer, s.batch_max, s.batch_wait_ms):
                if not batch:
                    continue
                t0 = time.perf_counter()
                out = await self.handle(batch)
                await self.app.publish(out)
                await self.app.commit_batch(consumer, batch)
                metrics.stage_batch("infer", len(batch), time.perf_counter() - t0, self.spec.id)
                metrics.published("infer", out, self.topics)
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reporter
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def handle(self, batch) -> list[Outgoing]:
        """Decode, drop expired, predict in the model thread, encode."""
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
        preds: list[Prediction] = error_predictions(
            expired, "expired: deadline passed before the model ran", worker
        )
        metrics.model_error(self.spec.id, "expired", len(expired))
        if live:
            # Length-sorted batches pad less; the adapter keeps input order.
            texts = [st.text for st in live]
            started = int(time.time() * 1000)
            t0 = time.perf_counter()
            try:
                loop = asyncio.get_running_loop()
                outputs = await asyncio.wait_for(
                    loop.run_in_executor(self.executor, self.adapter.predict, texts),
                    MODEL_TIMEOUT_S,
                )
                if len(outputs) != len(live):
                    raise RuntimeError(
                        f"model returned {len(outputs)} outputs for {len(live)} inputs"
                    )
                elapsed = (time.perf_counter() - t0) * 1000
                self.meter.observe(len(live), elapsed)
                metrics.model_batch(self.spec.id, len(live), elapsed / 1000)
                preds += to_predictions(
                    live, outputs, worker=worker, model_ms=elapsed, started_ms=started
                )
            except TimeoutError:
                self.meter.errors += len(live)
                metrics.model_error(self.spec.id, "timeout", len(live))
                log.error("model %s timed out after %.0fs", self.spec.id, MODEL_TIMEOUT_S)
                preds += error_predictions(live, f"timeout after {MODEL_TIMEOUT_S:.0f}s", worker)
            except Exception as exc:
                self.meter.errors += len(live)
                metrics.model_error(self.spec.id, "error", len(live))
                log.exception("model %s failed on a batch of %d", self.spec.id, len(live))
                preds += error_predictions(
                    live, f"model error: {type(exc).__name__}: {exc}", worker
                )
        out.extend(
            Outgoing(self.topics.predictions, dumps(p), key_bytes(p.message_id)) for p in preds
        )
        return out

    async def _report(self, consumer) -> None:
        interval = self.app.settings.stats_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                load = ModelLoad(
                    model_id=self.spec.id,
                    worker=self.app.worker,
                    lag=await self.app.lag(consumer),
                    per_item_ms=round(self.meter.per_item_ms, 3),
                    batch_ms=round(self.meter.batch_ms, 3),
                    batch_size=round(self.meter.batch_size, 2),
                    throughput=round(self.meter.take_throughput(), 2),
                    errors=self.meter.errors,
                    ts=int(time.time() * 1000),
                )
                metrics.model_lag(self.spec.id, load.lag)
                await self.app.publish(
                    [Outgoing(self.topics.stats, dumps(load), key_bytes(self.spec.id))]
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("load report for %s failed: %s", self.spec.id, exc)


async def run(app: StreamApp, specs: Sequence[ModelSpec], adapters: dict[str, Adapter]) -> None:
    """Serve every given model concurrently in this worker."""
    servers = [ModelServer(app, spec, adapters[spec.id]) for spec in specs]
    await asyncio.gather(*(s.run() for s in servers))

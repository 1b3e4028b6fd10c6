"""The allocator's view of live model load, read from the stats topic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from aiokafka.errors import KafkaError

from models.scoring import STALE_LOAD_MS, Load
from streams.app import StreamApp
from streams.codec import loads as decode
from streams.records import ModelLoad

log = logging.getLogger(__name__)


class LoadView:
    """Latest ModelLoad per (model, worker); summed per model on request.

    It also remembers what this allocator sent to each model and when: a model inviting a
    probe (its slowness forgotten while idle) gets one batch, not every message until its
    next report says the probe is running; and the backlog used for backpressure counts the
    subtasks sent since the model's last report.
    """

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], ModelLoad] = {}
        self._sent: dict[str, list[tuple[int, int]]] = {}  # model -> [(ms, subtasks)]

    def update(self, load: ModelLoad) -> None:
        self._latest[(load.model_id, load.worker)] = load

    def note_sent(self, counts: Mapping[str, int], now_ms: int) -> None:
        """This allocator published ``counts[model]`` subtasks per model at ``now_ms``."""
        for model_id, n in counts.items():
            if n > 0:
                entries = self._sent.setdefault(model_id, [])
                entries.append((now_ms, n))
                if entries[0][0] < now_ms - STALE_LOAD_MS:  # no report will ever cover these
                    self._sent[model_id] = [e for e in entries if e[0] >= now_ms - STALE_LOAD_MS]

    def _sent_since(self, model_id: str, ts: int) -> int:
        """Subtasks sent at or after ``ts`` (older entries are dropped: reports cover them)."""
        entries = [e for e in self._sent.get(model_id, ()) if e[0] >= ts]
        self._sent[model_id] = entries
        return sum(n for _, n in entries)

    def backlog(self, now_ms: int | None = None) -> tuple[str | None, int]:
        """The model with the most subtasks waiting (its reported lag plus what was sent to
        it since its newest report) and that number; (None, 0) without fresh reports."""
        worst: tuple[str | None, int] = (None, 0)
        for model_id, load in self.snapshot(now_ms).items():
            waiting = load.lag + self._sent_since(model_id, load.ts)
            if waiting > worst[1]:
                worst = (model_id, waiting)
        return worst

    def snapshot(self, now_ms: int | None = None) -> dict[str, Load]:
        """Per model: summed lag, slowest per-item and batch latency of fresh reports; held
        while every report invites a probe and work was sent since the newest of them."""
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        out: dict[str, Load] = {}
        probing: dict[str, bool] = {}
        measured: dict[str, tuple[float, float]] = {}
        for (model_id, _), rep in list(self._latest.items()):
            if now_ms - rep.ts > STALE_LOAD_MS:
                continue
            prev = out.get(model_id)
            probing[model_id] = probing.get(model_id, True) and rep.probe
            if rep.probe:
                m_item, m_batch = measured.get(model_id, (0.0, 0.0))
                measured[model_id] = (
                    max(m_item, rep.measured_per_item_ms or 0.0),
                    max(m_batch, rep.measured_batch_ms or 0.0),
                )
            if prev is None:
                out[model_id] = Load(rep.lag, rep.per_item_ms, rep.batch_ms, rep.ts)
            else:
                out[model_id] = Load(
                    prev.lag + rep.lag,
                    max(prev.per_item_ms or 0.0, rep.per_item_ms),
                    max(prev.batch_ms or 0.0, rep.batch_ms),
                    max(prev.ts, rep.ts),
                )
        for model_id, load in out.items():
            last_sent = max((t for t, _ in self._sent.get(model_id, ())), default=-1)
            if probing[model_id] and last_sent >= load.ts:
                per_item, batch = measured[model_id]
                out[model_id] = replace(load, per_item_ms=per_item, batch_ms=batch, held=True)
        return out


async def follow_loads(app: StreamApp, view: LoadView) -> None:
    """Keep ``view`` current from the stats topic until the app stops (a broker that is
    down at the start is waited for; meanwhile the allocator uses catalog latencies)."""
    consumer = None
    while consumer is None and not app.stopping.is_set():
        try:
            consumer = await app.consumer([app.topics.stats], group=None, auto_offset_reset="latest")
        except KafkaError as exc:
            log.warning("stats reader not started (%s); retrying in 2s", exc)
            await asyncio.sleep(2)
    try:
        while not app.stopping.is_set():
            try:
                got = await consumer.getmany(timeout_ms=500)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the allocator falls back to catalog latencies
                log.warning("stats reader: %s", exc)
                await asyncio.sleep(1)
                continue
            for recs in got.values():
                for rec in recs:
                    with contextlib.suppress(Exception):
                        view.update(decode(rec.value, ModelLoad))
    finally:
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

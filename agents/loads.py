"""The allocator's view of live model load, read from the stats topic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from models.scoring import STALE_LOAD_MS, Load
from streams.app import StreamApp
from streams.codec import loads as decode
from streams.records import ModelLoad

log = logging.getLogger(__name__)


class LoadView:
    """Latest ModelLoad per (model, worker); summed per model on request."""

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], ModelLoad] = {}

    def update(self, load: ModelLoad) -> None:
        self._latest[(load.model_id, load.worker)] = load

    def snapshot(self, now_ms: int | None = None) -> dict[str, Load]:
        """Per model: summed lag, slowest per-item and batch latency of fresh reports."""
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        out: dict[str, Load] = {}
        for (model_id, _), rep in list(self._latest.items()):
            if now_ms - rep.ts > STALE_LOAD_MS:
                continue
            prev = out.get(model_id)
            if prev is None:
                out[model_id] = Load(rep.lag, rep.per_item_ms, rep.batch_ms, rep.ts)
            else:
                out[model_id] = Load(
                    prev.lag + rep.lag,
                    max(prev.per_item_ms or 0.0, rep.per_item_ms),
                    max(prev.batch_ms or 0.0, rep.batch_ms),
                    max(prev.ts, rep.ts),
                )
        return out


async def follow_loads(app: StreamApp, view: LoadView) -> None:
    """Keep ``view`` current from the stats topic until the app stops."""
    consumer = await app.consumer([app.topics.stats], group=None, auto_offset_reset="latest")
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

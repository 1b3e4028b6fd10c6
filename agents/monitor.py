"""monitor: windows per source, entity and conversation; alert rules.

sf.results -> sf.windows (WindowStats) + sf.alerts (Alerts)
A result's offset is committed once every window it counts in has been published.
"""

from __future__ import annotations

import logging
import time

from aiokafka import TopicPartition
from pydantic import ValidationError

from agents.alerts import AlertEngine, AlertRules
from agents.windows import WindowStore
from streams import metrics
from streams.app import Outgoing, StreamApp
from streams.codec import dumps, key_bytes, loads
from streams.offsets import OffsetTracker
from streams.records import Result

log = logging.getLogger(__name__)
GROUP = "monitor"


async def run(app: StreamApp, rules: AlertRules | None = None) -> None:
    """The monitor loop."""
    s = app.settings
    store = WindowStore(s.window_size_s, s.window_hop_s, s.window_grace_s)
    engine = AlertEngine(rules or AlertRules(**s.alert_rules), s.window_size_s * 1000)
    tracker = OffsetTracker()
    consumer = None

    async def on_revoked(revoked: set[TopicPartition]) -> None:
        # Windows mix partitions: a rebalance restarts them from the committed offsets.
        if consumer is not None:
            await app.commit(consumer, tracker.to_commit())
        store.open.clear()
        store.max_ts_by_part.clear()
        for tp in revoked:
            tracker.forget(tp.topic, tp.partition)

    consumer = await app.consumer(
        [app.topics.results], group=f"{s.topic_prefix}{GROUP}", on_revoked=on_revoked
    )
    last_commit = 0.0
    async for batch in app.batches(consumer, s.batch_max * 4, 200):
        t0 = time.perf_counter()
        wall = int(time.time() * 1000)
        out: list[Outgoing] = []
        for rec in batch:
            where = (rec.topic, rec.partition, rec.offset)
            try:
                res = loads(rec.value, Result)
            except (ValidationError, ValueError) as exc:
                log.warning("skipping undecodable result at %s: %s", where, exc)
                tracker.see(*where)
                continue
            taken = store.add(res, wall, where)
            tracker.see(*where)
            for _ in range(taken):
                tracker.see(*where, hold=True)
            out.extend(
                Outgoing(app.topics.alerts, dumps(a), key_bytes(a.key)) for a in engine.on_result(res, wall)
            )
        closed = store.close_due(wall)
        for c in closed:
            out.append(
                Outgoing(
                    app.topics.windows,
                    dumps(c.stats),
                    key_bytes(f"{c.stats.dimension}:{c.stats.key}"),
                )
            )
            out.extend(
                Outgoing(app.topics.alerts, dumps(a), key_bytes(a.key))
                for a in engine.on_window(c.stats, wall)
            )
        if out:
            await app.publish(out)
        for c in closed:
            for where in c.window.offsets:
                tracker.release(*where)
        if time.monotonic() - last_commit > 1.0:
            commits = tracker.to_commit()
            if await app.commit(consumer, commits):
                tracker.mark_committed(commits)
            last_commit = time.monotonic()
        metrics.stage_batch("monitor", len(batch), time.perf_counter() - t0)
        metrics.published("monitor", out, app.topics)

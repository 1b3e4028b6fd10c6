"""dashboard: the live web page over the output topics (worker role ``dashboard``).

sf.results + sf.alerts + sf.windows + sf.stats -> http://DASHBOARD_HOST:DASHBOARD_PORT/

Reads the topics with group-less consumers (an observer: it commits nothing and never
slows the pipeline), aggregates them in ``agents.dashboard_state`` and streams snapshots
to every open page over Server-Sent Events, at most ``PUSH_INTERVAL_S`` apart. Static
assets (the page, its script, the vendored uPlot chart library) are served from
``agents/static``; nothing is fetched from a CDN.

Endpoints: ``/`` the page, ``/events?watch=ENTITY`` the SSE stream, ``/api/snapshot`` the
same snapshot as JSON, ``/healthz`` readiness (every topic's reader positioned).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import orjson
from aiohttp import web

from agents.dashboard_state import KINDS, DashboardConfig, DashboardState
from streams.app import StreamApp
from streams.io import read_topic
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
PUSH_INTERVAL_S = 0.5  # at most this often, when something changed
REFRESH_S = 2.0  # at least this often: rates, ages and open alerts move with the clock
HEARTBEAT_S = 15.0


def _now_ms() -> int:
    return int(time.time() * 1000)


class Dashboard:
    """The state, its topic readers and the HTTP app."""

    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        stopping: asyncio.Event,
        model_tasks: dict[str, str] | None = None,
        config: DashboardConfig | None = None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.stopping = stopping
        self.state = DashboardState(config, model_tasks)
        self.ready = {kind: asyncio.Event() for kind in KINDS}
        self.tick = asyncio.Event()  # set (and replaced) whenever there is news to push
        self.errors: dict[str, str] = {}
        self._cache: dict[tuple[int, str], tuple[float, bytes]] = {}

    # --- reading the topics -------------------------------------------------------------
    def topic_of(self, kind: str) -> str:
        return {
            "results": self.topics.results,
            "alerts": self.topics.alerts,
            "windows": self.topics.windows,
            "stats": self.topics.stats,
        }[kind]

    async def follow(self, kind: str) -> None:
        """Read one topic from its end (plus a little history) until stopped; retry on errors."""
        lookback = 0 if kind == "stats" else self.settings.dashboard_lookback
        while not self.stopping.is_set():
            try:
                async for rec in read_topic(
                    self.settings,
                    self.topic_of(kind),
                    from_beginning=False,
                    ready=self.ready[kind],
                    lookback=lookback,
                ):
                    self.state.add(kind, rec["value"], _now_ms())
                    self.errors.pop(kind, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker away: keep the page up, say so, retry
                self.errors[kind] = f"{type(exc).__name__}: {exc}"
                log.warning("dashboard reader of %s failed (%s); retrying", kind, exc)
                await asyncio.sleep(2.0)
            lookback = 0  # after a reconnect, only new records (the state has the rest)

    async def notify(self) -> None:
        """Wake the SSE streams when the state changed (at most every PUSH_INTERVAL_S) and
        every REFRESH_S anyway."""
        seen, last = -1, 0.0
        while not self.stopping.is_set():
            await asyncio.sleep(PUSH_INTERVAL_S)
            now = time.monotonic()
            if self.state.version != seen or now - last >= REFRESH_S:
                seen, last = self.state.version, now
                self.tick.set()
                self.tick = asyncio.Event()

    def snapshot(self, watch: str | None) -> dict:
        snap = self.state.snapshot(_now_ms(), watch)
        snap["ready"] = all(e.is_set() for e in self.ready.values())
        snap["errors"] = dict(self.errors)
        snap["topics"] = {kind: self.topic_of(kind) for kind in KINDS}
        return snap

    def snapshot_json(self, watch: str | None) -> bytes:
        """The encoded snapshot, shared by the pages watching the same entity for a moment."""
        key = (self.state.version, (watch or "").strip())
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < PUSH_INTERVAL_S:
            return hit[1]
        data = orjson.dumps(self.snapshot(watch))
        self._cache = {k: v for k, v in self._cache.items() if now - v[0] < PUSH_INTERVAL_S}
        self._cache[key] = (now, data)
        return data

    # --- HTTP ------------------------------------------------------------------------------
    def web_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/events", self.events)
        app.router.add_get("/api/snapshot", self.api_snapshot)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_static("/static/", STATIC, follow_symlinks=False)
        return app

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def api_snapshot(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.snapshot_json(request.query.get("watch")),
            content_type="application/json",
        )

    async def healthz(self, request: web.Request) -> web.Response:
        ready = {kind: e.is_set() for kind, e in self.ready.items()}
        body = {"ready": all(ready.values()), "readers": ready, "errors": self.errors}
        return web.Response(
            body=orjson.dumps(body),
            content_type="application/json",
            status=200 if body["ready"] else 503,
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: a full snapshot now and at every tick of ``notify``."""
        watch = request.query.get("watch")
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # no buffering behind nginx
            }
        )
        await resp.prepare(request)
        await resp.write(b"retry: 2000\n\n")
        try:
            while not self.stopping.is_set():
                data = self.snapshot_json(watch)
                await resp.write(b"event: snapshot\ndata: " + data + b"\n\n")
                tick = self.tick
                stop = asyncio.ensure_future(self.stopping.wait())
                woke = asyncio.ensure_future(tick.wait())
                # a tick, the stop, or (no notifier running) the heartbeat: send again
                await asyncio.wait({stop, woke}, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED)
                for f in (stop, woke):
                    f.cancel()
        except ConnectionResetError:
            pass  # the page went away
        return resp


async def serve(dash: Dashboard, host: str, port: int) -> None:
    """Run the readers and the HTTP server until ``dash.stopping`` is set."""
    runner = web.AppRunner(dash.web_app(), shutdown_timeout=2.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise RuntimeError(
            f"dashboard cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "set STREAMFUSE_DASHBOARD_PORT to a free port"
        ) from exc
    log.info("dashboard on http://%s:%d/", host, port)
    tasks = [asyncio.create_task(dash.follow(kind), name=f"dashboard-{kind}") for kind in KINDS]
    tasks.append(asyncio.create_task(dash.notify(), name="dashboard-notify"))
    try:
        await dash.stopping.wait()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await runner.cleanup()


async def run(app: StreamApp) -> None:
    """The dashboard role of a worker."""
    from models.registry import Registry

    try:
        model_tasks = {spec.id: spec.task for spec in Registry.load(include_test=True)}
    except Exception as exc:  # the page works without it; the models table lacks the task
        log.warning("dashboard: no model registry (%s)", exc)
        model_tasks = {}
    s = app.settings
    dash = Dashboard(s, app.topics, app.stopping, model_tasks)
    await serve(dash, s.dashboard_host, s.dashboard_port)

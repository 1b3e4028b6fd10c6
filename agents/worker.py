"""One worker process running any set of roles: recognize, infer[:ids], fuse, monitor,
dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streams.admin import ensure_topics, model_topics
from streams.app import StreamApp, current_role
from streams.memory import trim_loop
from streams.metrics import start_metrics_server
from streams.settings import Settings

if TYPE_CHECKING:
    from agents.infer import ServingSet

log = logging.getLogger(__name__)
ROLES = ("recognize", "infer", "fuse", "monitor", "dashboard")


@dataclass(slots=True)
class RoleSpec:
    roles: list[str] = field(default_factory=list)
    models: list[str] | None = None  # None = every model in the registry


def parse_roles(text: str) -> RoleSpec:
    """Parse ``recognize,fuse,infer:model-a,model-b`` (model ids follow ``infer:``)."""
    spec = RoleSpec()
    in_models = False
    for raw in (t.strip() for t in text.split(",")):
        if not raw:
            continue
        name, _, first_model = raw.partition(":")
        if name in ROLES:
            in_models = False
            if name not in spec.roles:
                spec.roles.append(name)
            if name == "infer" and first_model:
                spec.models = [first_model]
                in_models = True
        elif in_models and spec.models is not None:
            spec.models.append(raw)
        else:
            raise ValueError(f"unknown role {raw!r}; roles are {', '.join(ROLES)} (infer:MODEL,...)")
    if not spec.roles:
        raise ValueError(f"no roles given; choose from {', '.join(ROLES)}")
    return spec


async def run_worker(settings: Settings, spec: RoleSpec, worker: str | None = None) -> None:
    """Start the roles and run until SIGTERM/SIGINT, then stop cleanly."""
    from models.registry import Registry

    registry = Registry.load()
    app = StreamApp(settings, worker)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.stopping.set)
    # The broker may be down (restarting) when a worker starts: wait for it, don't die.
    await _retry(app, "connect", lambda: _connect(app, registry))
    metrics_server = start_metrics_server(settings)
    tasks: list[asyncio.Task[None]] = []
    trimmer = asyncio.create_task(trim_loop(settings.malloc_trim_s), name="malloc-trim")
    try:
        if "recognize" in spec.roles:
            from agents import recognize

            tasks.append(
                asyncio.create_task(
                    _supervise(app, "recognize", lambda: recognize.run(app, registry)), name="recognize"
                )
            )
        if "infer" in spec.roles:
            from agents import infer
            from agents.inline import inline_ids
            from models.adapters import build_adapter

            # Inline models are recognize's (agents.inline), unless named explicitly here.
            inline = inline_ids(registry, settings.inline_max_ms)
            specs = (
                [registry.get(m) for m in spec.models]
                if spec.models
                else [s for s in registry if s.task != "domain" and s.id not in inline]
            )
            # A backbone's topic carries subtasks for every model in its group: serve them all.
            group_of = registry.groups(coschedule=settings.coschedule, share_base=settings.share_base)
            groups = {group_of[s.id] for s in specs if group_of.get(s.id)}
            specs += [s for s in registry if group_of[s.id] in groups and s not in specs]
            adapters = {s.id: build_adapter(s) for s in specs}
            # First calls are slow (lazy loading, allocator warm-up): pay them before joining
            # the group, not on the first real batch with its deadline.
            await asyncio.to_thread(
                _warm_up, infer.serving_sets(settings, specs, adapters), settings.model_timeout_s
            )
            log.info("serving models: %s", ", ".join(adapters))
            tasks.append(
                asyncio.create_task(
                    _supervise(app, "infer", lambda: infer.run(app, specs, adapters)), name="infer"
                )
            )
        if "fuse" in spec.roles:
            from agents import fuse

            tasks.append(
                asyncio.create_task(_supervise(app, "fuse", lambda: fuse.run(app, registry)), name="fuse")
            )
        if "monitor" in spec.roles:
            from agents import monitor

            tasks.append(
                asyncio.create_task(_supervise(app, "monitor", lambda: monitor.run(app)), name="monitor")
            )
        if "dashboard" in spec.roles:
            from agents import dashboard

            tasks.append(
                asyncio.create_task(
                    _supervise(app, "dashboard", lambda: dashboard.run(app)), name="dashboard"
                )
            )
        log.info("worker %s running roles: %s", app.worker, ", ".join(spec.roles))
        stop_wait = asyncio.create_task(app.stopping.wait())
        done, _ = await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is not stop_wait and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
    finally:
        trimmer.cancel()
        app.stopping.set()
        if tasks:  # let each loop finish and commit its current batch
            await asyncio.wait(tasks, timeout=5)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await app.stop()
        if metrics_server is not None:
            metrics_server.shutdown()
        log.info("worker %s stopped", app.worker)


def _warm_up(sets: list[ServingSet], timeout: float) -> None:
    """One small batch per serving set (``agents.infer.ServingSet``), the way its server
    will compute it, each bounded by the model timeout (a hung model must not keep the
    worker from starting: its batches will time out and fail over)."""
    for ss in sets:
        errors: list[BaseException] = []
        name = ss.backbone or next(iter(ss.adapters))

        def call(ss=ss, errors=errors) -> None:
            try:
                ss.warm_up()
            except Exception as exc:
                errors.append(exc)

        thread = threading.Thread(target=call, daemon=True, name=f"warm-{name}")
        thread.start()
        thread.join(timeout)
        if thread.is_alive() or errors:
            log.warning("warm-up of %s failed: %s", name, errors[0] if errors else "timed out")


async def _connect(app: StreamApp, registry) -> None:
    await ensure_topics(app.settings, model_topics(app.topics, registry))
    if not app.started:
        await app.start()


async def _retry(app: StreamApp, what: str, attempt) -> None:
    delay = 0.5
    while not app.stopping.is_set():
        try:
            await attempt()
            return
        except Exception as exc:
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _supervise(app: StreamApp, name: str, factory) -> None:
    """Run a role; if it fails (broker gone, a bug on one batch), restart it with backoff.

    Its uncommitted records are redelivered to the restarted loop: nothing is lost, and a
    worker process never dies of a transient fault.
    """
    delay = 0.5
    while not app.stopping.is_set():
        started = time.monotonic()
        token = current_role.set(name)
        try:
            await factory()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("role %s failed; restarting in %.1fs", name, delay)
            await app.close_consumers(name)
            await asyncio.sleep(delay)
            delay = 0.5 if time.monotonic() - started > 60 else min(delay * 2, 10.0)
        finally:
            current_role.reset(token)

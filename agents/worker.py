"""One worker process running any set of roles: recognize, infer[:ids], fuse, monitor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field

from streams.admin import all_topics, ensure_topics
from streams.app import StreamApp
from streams.settings import Settings

log = logging.getLogger(__name__)
ROLES = ("recognize", "infer", "fuse", "monitor")


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
            raise ValueError(
                f"unknown role {raw!r}; roles are {', '.join(ROLES)} (infer:MODEL,...)"
            )
    if not spec.roles:
        raise ValueError(f"no roles given; choose from {', '.join(ROLES)}")
    return spec


async def run_worker(settings: Settings, spec: RoleSpec, worker: str | None = None) -> None:
    """Start the roles and run until SIGTERM/SIGINT, then stop cleanly."""
    from models.registry import Registry

    registry = Registry.load(include_test=bool(spec.models))
    app = StreamApp(settings, worker)
    await ensure_topics(settings, all_topics(app.topics, [m.id for m in registry]))
    await app.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.stopping.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        if "recognize" in spec.roles:
            from agents import recognize

            tasks.append(asyncio.create_task(recognize.run(app, registry), name="recognize"))
        if "infer" in spec.roles:
            from agents import infer
            from models.adapters import build_adapter

            specs = (
                [registry.get(m) for m in spec.models]
                if spec.models
                else [s for s in registry if s.task != "domain"]
            )
            adapters = {s.id: build_adapter(s) for s in specs}
            log.info("serving models: %s", ", ".join(adapters))
            tasks.append(asyncio.create_task(infer.run(app, specs, adapters), name="infer"))
        if "fuse" in spec.roles:
            from agents import fuse

            tasks.append(asyncio.create_task(fuse.run(app, registry), name="fuse"))
        if "monitor" in spec.roles:
            from agents import monitor

            tasks.append(asyncio.create_task(monitor.run(app), name="monitor"))
        log.info("worker %s running roles: %s", app.worker, ", ".join(spec.roles))
        stop_wait = asyncio.create_task(app.stopping.wait())
        done, _ = await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is not stop_wait and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
    finally:
        app.stopping.set()
        if tasks:  # let each loop finish and commit its current batch
            await asyncio.wait(tasks, timeout=5)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await app.stop()
        log.info("worker %s stopped", app.worker)

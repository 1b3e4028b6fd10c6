"""Shared test configuration, and the fixtures for tests against the real local Kafka broker.

One broker per test session (started and stopped here, in a temporary state dir), shared by
tests/integration, tests/browser and tests/chaos; each test gets its own topic prefix, so
tests never see each other's records. Unit tests never ask for these fixtures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from streams import broker
from streams.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
# Tests see the committed models only, as CI's fresh clone does: full checkpoints that a
# developer trained locally (models.registry.local_artifacts_dir) would change allocations.
os.environ["STREAMFUSE_LOCAL_ARTIFACTS"] = str(REPO / "artifacts-local" / "none-in-tests")


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A real single-node Kafka broker for the whole session."""
    state = tmp_path_factory.mktemp("state")
    settings = Settings(state_dir=state)
    info = broker.start(settings)
    assert info.running and info.endpoint
    yield settings
    broker.stop(settings)


@dataclass
class Env:
    """Environment for one test's CLI calls and workers (own topic prefix)."""

    settings: Settings
    prefix: str
    vars: dict[str, str] = field(default_factory=dict)

    def cli(
        self, *args: str, input: bytes | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `streamfuse ARGS` and return the completed process (raises on failure)."""
        proc = subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env=self.vars,
            input=input,
            capture_output=True,
            timeout=timeout,
            cwd=REPO,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"streamfuse {' '.join(args)} exited {proc.returncode}:\n{proc.stderr.decode()[-3000:]}"
            )
        return proc

    def tail_json(
        self,
        target: str,
        *,
        limit: int | None = None,
        timeout: float = 120,
        idle: float | None = None,
    ) -> list[dict]:
        args = ["tail", target, "--json", "--timeout", str(timeout)]
        if limit is not None:
            args += ["--limit", str(limit)]
        if idle is not None:
            args += ["--idle", str(idle)]
        out = self.cli(*args, timeout=timeout + 60).stdout
        return [orjson.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def env(kafka: Settings, tmp_path: Path) -> Env:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    state = kafka.state_dir
    variables = {
        **os.environ,
        "STREAMFUSE_STATE_DIR": str(state),
        "STREAMFUSE_TOPIC_PREFIX": prefix,
        "STREAMFUSE_SESSION_TIMEOUT_MS": "6000",
        "STREAMFUSE_HEARTBEAT_INTERVAL_MS": "500",
        "STREAMFUSE_TORCH_THREADS": "1",
        # Tests check outcomes, not speed: a loaded CI machine must not turn results partial.
        "STREAMFUSE_DEADLINE_GRACE_MS": "30000",
        "PYTHONUNBUFFERED": "1",
    }
    variables.pop("STREAMFUSE_BROKER", None)
    return Env(Settings(state_dir=state, topic_prefix=prefix), prefix, variables)


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_worker(env: Env, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Factory: start a `streamfuse worker --roles R` process; all are stopped at teardown."""
    workers: list[Worker] = []

    def start(roles: str, extra_env: dict[str, str] | None = None, name: str | None = None) -> Worker:
        log = tmp_path / f"worker-{len(workers)}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker", "--roles", roles]
                + (["--name", name] if name else []),
                env={**env.vars, **(extra_env or {})},
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        w = Worker(proc, log)
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.stop()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")

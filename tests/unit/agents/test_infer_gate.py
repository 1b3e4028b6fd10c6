"""The compute gate of an infer process: at most ``model_concurrency`` batches compute at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from types import SimpleNamespace

from agents.infer import ModelServer
from models.base import ModelOutput
from streams.codec import dumps
from streams.records import Subtask
from streams.settings import Settings
from streams.topics import Topics


class SlowAdapter:
    """Sleeps per batch and records how many batches were computing at the same time."""

    backbone = None

    def __init__(self, shared: dict[str, int], lock: threading.Lock) -> None:
        self.shared, self.lock = shared, lock

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        with self.lock:
            self.shared["now"] += 1
            self.shared["most"] = max(self.shared["most"], self.shared["now"])
        time.sleep(0.05)
        with self.lock:
            self.shared["now"] -= 1
        return [ModelOutput("positive", 0.9, {"positive": 0.9, "negative": 0.1}) for _ in texts]


def _records(model_id: str, n: int = 3) -> list[SimpleNamespace]:
    now = int(time.time() * 1000)
    return [
        SimpleNamespace(
            value=dumps(
                Subtask(
                    message_id=f"{model_id}-{i}",
                    task="t",
                    model_id=model_id,
                    text="x",
                    deadline_ms=now + 60_000,
                    created_ms=now,
                )
            ),
            topic="t",
            partition=0,
            offset=i,
        )
        for i in range(n)
    ]


async def _most_at_once(gate: asyncio.Semaphore | None, servers: int = 3) -> int:
    shared, lock = {"now": 0, "most": 0}, threading.Lock()
    app = SimpleNamespace(settings=Settings(), worker="w", topics=Topics("t."))
    models = [
        ModelServer(app, {f"m{i}": SlowAdapter(shared, lock)}, gate=gate)  # type: ignore[arg-type, dict-item]
        for i in range(servers)
    ]
    outs = await asyncio.gather(*(m.handle(_records(m.name)) for m in models))
    assert all(len(o) == 3 for o in outs)  # every subtask still gets its prediction
    return shared["most"]


def test_a_gate_of_one_runs_one_batch_at_a_time():
    assert asyncio.run(_most_at_once(asyncio.Semaphore(1))) == 1


def test_without_a_gate_batches_overlap():
    assert asyncio.run(_most_at_once(None)) > 1


def test_a_gate_of_two_lets_two_overlap():
    assert asyncio.run(_most_at_once(asyncio.Semaphore(2))) == 2

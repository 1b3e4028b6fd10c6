"""The compute gate of an infer process: at most ``model_concurrency`` batches compute at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from types import SimpleNamespace

from agents.infer import ModelServer, servers_for
from models.base import ModelOutput
from models.registry import ModelSpec
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


class FakeApp(SimpleNamespace):
    """The slice of StreamApp a ModelServer's turn uses; ``waiting`` is what ``more`` finds."""

    def __init__(self, settings: Settings | None = None, waiting: list | None = None) -> None:
        super().__init__(settings=settings or Settings(), worker="w", topics=Topics("t."))
        self.waiting = list(waiting or [])

    async def more(self, consumer, max_records: int) -> list:
        got, self.waiting = self.waiting[:max_records], self.waiting[max_records:]
        return got


async def _most_at_once(gate: asyncio.Semaphore | None, servers: int = 3) -> int:
    shared, lock = {"now": 0, "most": 0}, threading.Lock()
    app = FakeApp()
    models = [
        ModelServer(app, {f"m{i}": SlowAdapter(shared, lock)}, gate=gate)  # type: ignore[arg-type, dict-item]
        for i in range(servers)
    ]
    turns = await asyncio.gather(*(m.take_turn(None, _records(m.name)) for m in models))
    assert all(len(out) == 3 for _, out in turns)  # every subtask still gets its prediction
    return shared["most"]


def test_a_gate_of_one_runs_one_batch_at_a_time():
    assert asyncio.run(_most_at_once(asyncio.Semaphore(1))) == 1


def test_without_a_gate_batches_overlap():
    assert asyncio.run(_most_at_once(None)) > 1


def test_a_gate_of_two_lets_two_overlap():
    assert asyncio.run(_most_at_once(asyncio.Semaphore(2))) == 2


def test_records_that_arrive_while_a_batch_waits_for_the_gate_join_it():
    async def run() -> tuple[list, list, list]:
        shared, lock = {"now": 0, "most": 0}, threading.Lock()
        gate = asyncio.Semaphore(1)
        records = _records("m", 8)
        app = FakeApp(Settings(batch_max=6))
        server = ModelServer(app, {"m": SlowAdapter(shared, lock)}, gate=gate)  # type: ignore[arg-type, dict-item]
        async with gate:  # another model's batch is computing
            turn = asyncio.create_task(server.take_turn(None, records[:1]))
            await asyncio.sleep(0.01)
            app.waiting = records[1:]  # arrive meanwhile
        batch, out = await turn
        return batch, out, app.waiting

    batch, out, left = asyncio.run(run())
    assert [r.offset for r in batch] == [0, 1, 2, 3, 4, 5]  # topped up to the cap, in order
    assert len(out) == 6
    assert [r.offset for r in left] == [6, 7]  # the rest waits for the next batch


def _spec(mid: str, adapter: str, backbone: str | None = None) -> ModelSpec:
    return ModelSpec(id=mid, task="t", kind="x", adapter=adapter, backbone=backbone)


def test_without_gate_all_models_only_torch_models_take_the_gate():
    settings = Settings(model_concurrency=2, gate_all_models=False, share_base=False)
    app = SimpleNamespace(settings=settings, worker="w", topics=Topics("t."))
    specs = [
        _spec("words", "wordlist"),
        _spec("tfidf", "tfidf_linear"),
        _spec("lora", "minilm_lora"),
        _spec("head-a", "minilm_head", "minilm"),
        _spec("head-b", "minilm_head", "minilm"),
    ]
    adapters = {s.id: SimpleNamespace(backbone=s.backbone) for s in specs}
    servers = {s.name: s for s in servers_for(app, specs, adapters)}  # type: ignore[arg-type]
    assert servers["words"].gate is None and servers["tfidf"].gate is None
    gates = {id(servers[name].gate) for name in ("lora", "backbone.minilm")}
    assert len(gates) == 1 and servers["lora"].gate is not None  # one gate, shared


def test_with_share_base_lora_models_on_minilm_join_the_backbones_server():
    app = SimpleNamespace(settings=Settings(share_base=True), worker="w", topics=Topics("t."))
    specs = [
        _spec("lora", "minilm_lora"),
        _spec("mpnet", "mpnet_lora"),
        _spec("head-a", "minilm_head", "minilm"),
    ]
    adapters = {s.id: SimpleNamespace(backbone=s.backbone) for s in specs}
    servers = {s.name: s for s in servers_for(app, specs, adapters)}  # type: ignore[arg-type]
    assert sorted(servers) == ["backbone.minilm", "mpnet"]  # another base: a server of its own
    assert sorted(servers["backbone.minilm"].adapters) == ["head-a", "lora"]
    assert servers["backbone.minilm"].topic == "t.backbone.minilm"


def test_concurrency_zero_means_no_gate_at_all():
    app = SimpleNamespace(settings=Settings(model_concurrency=0), worker="w", topics=Topics("t."))
    spec = _spec("lora", "minilm_lora")
    (server,) = servers_for(app, [spec], {"lora": SimpleNamespace(backbone=None)})  # type: ignore[arg-type]
    assert server.gate is None


def test_gate_all_models_puts_the_cheap_ones_behind_it_too():
    app = SimpleNamespace(
        settings=Settings(model_concurrency=2, gate_all_models=True, share_base=False),
        worker="w",
        topics=Topics("t."),
    )
    specs = [_spec("words", "wordlist"), _spec("lora", "minilm_lora")]
    adapters = {s.id: SimpleNamespace(backbone=None) for s in specs}
    servers = {s.name: s for s in servers_for(app, specs, adapters)}  # type: ignore[arg-type]
    assert servers["words"].gate is not None and servers["words"].gate is servers["lora"].gate

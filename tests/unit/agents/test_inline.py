"""Models computed inline by recognize (agents.inline): which ones, their predictions, and
what recognize publishes for them instead of subtasks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import orjson

from agents.inline import inline_ids, is_inline, predict_inline
from agents.recognize import Raw, route
from models.base import ModelOutput
from models.registry import ModelSpec, Registry
from streams.records import Subtask
from streams.topics import Topics
from tests.unit.agents.test_planning import planner


def spec(mid: str, adapter: str, ms: float | None, backbone: str | None = None, task: str = "t") -> ModelSpec:
    return ModelSpec(
        id=mid,
        task=task,
        kind="test",
        adapter=adapter,
        backbone=backbone,
        latency_ms={} if ms is None else {"32": ms},
    )


def test_only_cheap_models_without_torch_are_inline() -> None:
    assert is_inline(spec("lin", "tfidf_linear", 0.09), 0.25)
    assert not is_inline(spec("lin", "tfidf_linear", 0.09), 0)  # 0: off
    assert not is_inline(spec("slow", "tfidf_linear", 0.5), 0.25)
    assert not is_inline(spec("unmeasured", "tfidf_linear", None), 0.25)
    assert not is_inline(spec("lora", "minilm_lora", 0.01), 0.25)
    assert not is_inline(spec("head", "minilm_head", 0.01, backbone="minilm"), 0.25)
    reg = Registry([spec("lin", "tfidf_linear", 0.09), spec("dom", "tfidf_linear", 0.05, task="domain")])
    assert inline_ids(reg, 0.25) == {"lin"}  # the domain classifier is the planner's own


class Upper:
    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        return [ModelOutput("UP" if t.isupper() else "LOW", 0.9, {"UP": 0.9, "LOW": 0.1}) for t in texts]


class Broken:
    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        raise ValueError("no vocabulary")


def subtask(mid: str, model: str, text: str) -> Subtask:
    return Subtask(
        message_id=mid, task="t", model_id=model, text=text, lang="en", created_ms=0, deadline_ms=1
    )


def test_each_model_predicts_its_batch_and_a_failure_gives_error_predictions() -> None:
    todo = [subtask("m1", "up", "ABC"), subtask("m1", "bad", "ABC"), subtask("m2", "up", "abc")]
    preds = predict_inline(todo, {"up": Upper(), "bad": Broken()}, "w1")  # type: ignore[dict-item]
    got = {(p.message_id, p.model_id): p for p in preds}
    assert set(got) == {("m1", "up"), ("m2", "up"), ("m1", "bad")}
    assert got["m1", "up"].label == "UP" and got["m2", "up"].label == "LOW"
    assert got["m1", "up"].batch_size == 2 and got["m1", "up"].worker == "w1"
    assert got["m1", "bad"].error == "model error: ValueError: no vocabulary"
    assert got["m1", "bad"].label is None


def test_recognize_publishes_inline_predictions_instead_of_their_subtasks() -> None:
    p = planner()
    topics = Topics("sf.")
    raw = Raw(orjson.dumps({"id": "m1", "text": "Apple beats $AAPL", "source": "newswire"}), "sf.in", 0, 5)
    plain, used_plain = route(p, topics, [raw], {}, 0)
    inline = {"lin": Upper(), "tick": Upper()}
    out, used = route(p, topics, [raw], {}, 0, inline, "w1")  # type: ignore[arg-type]
    by_topic = {o.topic for o in out}
    assert topics.model("lin") not in by_topic and topics.model("tick") not in by_topic
    assert topics.model("lin") in {o.topic for o in plain}
    preds = [orjson.loads(o.value) for o in out if o.topic == topics.predictions]
    assert sorted(x["model_id"] for x in preds) == ["lin", "tick"]
    assert all(x["message_id"] == "m1" for x in preds)
    assert used == used_plain - Counter({"lin": 1, "tick": 1})
    assert len(out) == len(plain)  # one prediction for each subtask it replaces

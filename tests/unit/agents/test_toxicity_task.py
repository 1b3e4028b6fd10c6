"""The toxicity task end to end without a broker: planned for chat, fused, read by the assist."""

from __future__ import annotations

from collections.abc import Sequence

from agents.planning import DOMAIN_TASKS, KNOWN_TASKS, Planner, check_tasks
from agents.results import build_result
from models.base import ModelOutput
from models.registry import ModelSpec, Registry
from streams.records import InputMessage, Prediction
from streams.settings import Settings


def spec(mid: str, task: str, q: float, ms: float) -> ModelSpec:
    return ModelSpec(
        id=mid, task=task, kind="test", adapter="test", metrics={"val_macro_f1": q}, latency_ms={"32": ms}
    )


class SupportDomain:
    model_id, task, labels, backbone = "dom", "domain", ["financial", "support", "general"], None

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        return [ModelOutput("support", 0.9) for _ in texts]


# Toxicity models carry no measured quality (no labelled data): the registry's default 0.5.
TOX = [
    ModelSpec(id="toxicity-svm", task="toxicity", kind="linear", adapter="x", latency_ms={"32": 0.04}),
    ModelSpec(id="toxicity-words", task="toxicity", kind="lexicon", adapter="x", latency_ms={"32": 0.04}),
]
REG = Registry([spec("int", "intent", 0.9, 1.0), spec("sent", "sentiment", 0.85, 1.0), *TOX])


def test_toxicity_is_a_known_task_and_a_chat_default() -> None:
    assert "toxicity" in KNOWN_TASKS and "toxicity" in DOMAIN_TASKS["support"]
    assert "toxicity" not in DOMAIN_TASKS["financial"]
    check_tasks(["toxicity"])  # does not raise


def test_a_support_turn_gets_both_toxicity_models() -> None:
    planner = Planner(REG, Settings(source_tasks={}), SupportDomain())
    (p,) = planner.plan_batch([(InputMessage(text="you useless idiots", source="chat"), "m")], {}, 0)
    tox = next(t for t in p.plan.tasks if t.task == "toxicity")
    assert sorted(tox.models) == ["toxicity-svm", "toxicity-words"]
    assert tox.strategy == "weighted_vote"
    assert {("toxicity", m) for m in tox.models} <= p.plan.expected()
    assert [u.task for u in p.plan.unserved] == ["kb"]  # no kb model in this registry


def _pred(model: str, label: str, probs: dict[str, float] | None) -> Prediction:
    return Prediction(
        message_id="m",
        task="toxicity",
        model_id=model,
        label=label,
        score=probs[label] if probs else 1.0,
        probs=probs,
        ts=0,
    )


def _fuse(svm_toxic: float, words_label: str):
    planner = Planner(REG, Settings(source_tasks={}), SupportDomain())
    (p,) = planner.plan_batch([(InputMessage(text="turn", source="chat", tasks=["toxicity"]), "m")], {}, 0)
    svm_label = "toxic" if svm_toxic >= 0.5 else "clean"
    preds = {
        ("toxicity", "toxicity-svm"): _pred(
            "toxicity-svm", svm_label, {"clean": 1 - svm_toxic, "toxic": svm_toxic}
        ),
        ("toxicity", "toxicity-words"): _pred("toxicity-words", words_label, None),  # a word list: no probs
    }
    return build_result(p.plan, preds, 5, partial=False, uncertain_below=0.5).outputs["toxicity"]


def test_fusion_mixes_a_distribution_with_a_one_hot_word_list_vote() -> None:
    both = _fuse(0.9, "toxic")
    assert both.label == "toxic" and both.agreement == 1.0 and not both.uncertain
    clean = _fuse(0.05, "clean")
    assert clean.label == "clean" and clean.probs is not None and clean.probs["clean"] > 0.9
    split = _fuse(0.2, "toxic")  # equal weights: 0.5 * 0.2 + 0.5 * 1.0 = 0.6 toxic
    assert split.label == "toxic" and split.agreement == 0.5
    assert abs(split.probs["toxic"] - 0.6) < 1e-6  # type: ignore[index]

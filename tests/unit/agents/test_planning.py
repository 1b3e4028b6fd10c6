from collections.abc import Sequence

from agents.planning import Planner, derive_id
from models.base import ModelOutput
from models.registry import ModelSpec, Registry
from streams.records import InputMessage
from streams.settings import Settings


def spec(mid: str, task: str, q: float, ms: float, langs=("en",)) -> ModelSpec:
    return ModelSpec(
        id=mid,
        task=task,
        kind="test",
        adapter="test",
        languages=list(langs),
        metrics={"val_macro_f1": q},
        latency_ms={"32": ms},
    )


class FakeDomain:
    model_id, task, labels, backbone = "dom", "domain", ["financial", "support", "general"], None

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        return [ModelOutput("financial" if "$" in t else "support", 0.9) for t in texts]


REG = Registry(
    [
        spec("lex", "fin_sentiment", 0.55, 0.05),
        spec("head", "fin_sentiment", 0.84, 1.0),
        spec("lin", "fin_sentiment", 0.78, 0.1),
        spec("tick", "entities", 0.9, 0.05),
        spec("int", "intent", 0.9, 1.0),
        spec("sent", "sentiment", 0.85, 1.0),
    ]
)


def planner(**overrides) -> Planner:
    return Planner(
        REG,
        Settings(source_tasks={"newswire": ["fin_sentiment", "entities"]}, **overrides),
        FakeDomain(),
    )


def test_source_default_tasks_and_ensemble():
    (p,) = planner().plan_batch([(InputMessage(text="Apple beats estimates", source="newswire"), "m")], {}, 0)
    assert p.plan.task_source == "source-default"
    fin = next(t for t in p.plan.tasks if t.task == "fin_sentiment")
    assert fin.models[0] == "head" and "lin" in fin.models and "lex" not in fin.models
    assert fin.strategy == "weighted_vote"
    assert {(s.task, s.model_id) for s in p.subtasks} == p.plan.expected()


def test_classifier_decides_when_nothing_is_said():
    (fin, chat) = planner().plan_batch(
        [
            (InputMessage(text="$TSLA to the moon", source="x"), "a"),
            (InputMessage(text="my card was stolen", source="x"), "b"),
        ],
        {},
        0,
    )
    assert fin.plan.domain == "financial" and {t.task for t in fin.plan.tasks} == {
        "fin_sentiment",
        "entities",
    }
    assert chat.plan.domain == "support" and {t.task for t in chat.plan.tasks} == {
        "intent",
        "sentiment",
    }


def test_explicit_tasks_win_and_missing_models_are_unserved():
    (p,) = planner().plan_batch(
        [(InputMessage(text="ok then", source="newswire", tasks=["toxicity"]), "m")], {}, 0
    )
    assert p.plan.tasks == [] and p.plan.unserved[0].task == "toxicity"


def test_unsupported_language_is_said_not_dropped():
    (p,) = planner().plan_batch(
        [
            (
                InputMessage(
                    text="Die Aktie von Apple fällt nach schwachen Zahlen deutlich",
                    source="newswire",
                ),
                "m",
            )
        ],
        {},
        0,
    )
    assert p.plan.lang == "de" and p.plan.tasks == []
    assert all("language 'de'" in u.reason for u in p.plan.unserved)


def test_budget_from_priority_and_deadline():
    msg = InputMessage(text="hello there", source="newswire", meta={"priority": "high"})
    (p,) = planner(deadline_grace_ms=100).plan_batch([(msg, "m")], {}, 1000)
    assert p.plan.budget_ms == 500 and p.plan.deadline_ms == 1600


def test_derived_ids_are_stable():
    assert derive_id("sf.in", 1, 2) == derive_id("sf.in", 1, 2) != derive_id("sf.in", 1, 3)


def test_a_model_that_is_not_serving_is_never_allocated():
    # Its validation score (0.99) would rank it first; it is catalogued for evaluation only.
    shelf = spec("bench-only", "fin_sentiment", 0.99, 0.05).model_copy(update={"serving": False})
    reg = Registry([*REG, shelf])
    p = Planner(reg, Settings(source_tasks={"newswire": ["fin_sentiment"]}), FakeDomain())
    everyday, evaluation = p.plan_batch(
        [
            (InputMessage(text="Apple beats estimates", source="newswire"), "a"),
            (InputMessage(text="Apple beats estimates", source="newswire", meta={"models": "all"}), "b"),
        ],
        {},
        0,
    )
    for planned in (everyday, evaluation):
        assert "bench-only" not in planned.plan.tasks[0].models
    assert "bench-only" in reg  # still listed, evaluated and loadable by id

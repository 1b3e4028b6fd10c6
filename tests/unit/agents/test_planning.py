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


def _choose(monkeypatch, strategy: str, best: str = "head") -> None:
    from agents import planning
    from models.stacking import FusionChoice

    acc = {"single": 0.85, "weighted_vote": 0.84, "stacking": 0.84}
    choice = FusionChoice("fin_sentiment", strategy, best, ("head", "lin"), acc)
    monkeypatch.setattr(planning, "load_choice", lambda task: choice if task == "fin_sentiment" else None)


def test_a_task_whose_ensemble_did_not_pay_runs_its_best_model_alone(monkeypatch):
    _choose(monkeypatch, "single")
    msg = InputMessage(text="Apple beats estimates", source="newswire")
    (p,) = planner().plan_batch([(msg, "m")], {}, 0)
    fin = next(t for t in p.plan.tasks if t.task == "fin_sentiment")
    assert fin.models == ["head"] and fin.strategy == "single"
    assert ("fin_sentiment", "lin") not in p.plan.expected()
    # a producer who asks for a fusion strategy, or for every model, still gets the ensemble
    for meta in ({"fusion": "weighted_vote"}, {"models": "all"}):
        asked = InputMessage(text="Apple beats", source="newswire", meta=meta)
        (q,) = planner().plan_batch([(asked, "n")], {}, 0)
        assert len(next(t for t in q.plan.tasks if t.task == "fin_sentiment").models) > 1


def test_a_choice_made_for_another_leader_leaves_the_ensemble_alone(monkeypatch):
    _choose(monkeypatch, "single", best="lex")
    (p,) = planner().plan_batch([(InputMessage(text="Apple beats estimates", source="newswire"), "m")], {}, 0)
    assert len(next(t for t in p.plan.tasks if t.task == "fin_sentiment").models) > 1


def test_a_vote_chosen_on_validation_is_used_even_where_a_stacker_covers_the_members(monkeypatch):
    from agents import planning
    from models.stacking import FusionChoice, Stacker

    stacker = Stacker("sentiment", ("a", "b"), ("neg", "pos"), W=None, b=None)  # type: ignore[arg-type]
    monkeypatch.setattr(planning, "load_stacker", lambda task: stacker)
    acc = {"single": 0.8, "weighted_vote": 0.85, "stacking": 0.84}
    vote = FusionChoice("sentiment", "weighted_vote", "a", ("a", "b"), acc)
    monkeypatch.setattr(planning, "load_choice", lambda task: vote)
    assert planning._strategy("sentiment", ["a", "b"]) == "weighted_vote"
    assert planning._strategy("sentiment", ["a", "b"], "stacking") == "stacking"
    monkeypatch.setattr(planning, "load_choice", lambda task: None)
    assert planning._strategy("sentiment", ["a", "b"]) == "stacking"

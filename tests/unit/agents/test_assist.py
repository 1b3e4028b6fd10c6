"""Customer-service assist: template selection, the hand-off rule, articles (pure, no broker)."""

from __future__ import annotations

import pytest

from agents.assist import (
    ESCALATING,
    NEEDS_HUMAN,
    OUT_OF_SCOPE,
    TOXIC,
    UNCERTAIN,
    URGENT,
    AssistRules,
    Template,
    build_assist,
    fill_reply,
    handoff_reasons,
    load_templates,
    merge_articles,
    select_template,
)
from agents.results import build_result
from streams.records import AssistArticle, Plan, Prediction, Result, TaskPlan, TaskResult, Unserved

TEMPLATES = {
    "card_arrival": Template(
        "card_arrival", "Sorry it's late, {customer_name} - track it in Cards.", False, "normal"
    ),
    "lost_or_stolen_card": Template("lost_or_stolen_card", "Freeze it now.", True, "high"),
    "exchange_rate": Template("exchange_rate", "We use the live rate.", False, "low"),
    "top_up_failed": Template("top_up_failed", "Try again later.", False, "normal"),
}
RULES = AssistRules(handoff_below=0.5, templates=TEMPLATES)
ARTICLES = [AssistArticle(id="kb-1", title="Where is my card?", score=0.61)]


def turn(
    text: str = "Where is my card?",
    intent: str | None = "card_arrival",
    score: float = 0.9,
    uncertain: bool = False,
    sentiment: str | None = None,
    **outputs: TaskResult,
) -> Result:
    outs: dict[str, TaskResult] = {"intent": TaskResult(label=intent, score=score, uncertain=uncertain)}
    if sentiment:
        outs["sentiment"] = TaskResult(label=sentiment, score=0.9)
    outs.update(outputs)
    return Result(id="m", text=text, source="support-chat", key="c1", ts=0, lang="en", outputs=outs)


def reasons(res: Result, rules: AssistRules = RULES) -> list[str]:
    intent = res.outputs.get("intent")
    template, _ = select_template(intent, rules.template_map())
    return handoff_reasons(res, intent, template, rules)


# --- template selection -----------------------------------------------------------------


def test_template_of_the_fused_intent_with_its_confidence() -> None:
    template, confidence = select_template(TaskResult(label="exchange_rate", score=0.83), TEMPLATES)
    assert template is TEMPLATES["exchange_rate"] and confidence == 0.83
    assert select_template(TaskResult(label="oos", score=0.9), TEMPLATES) == (None, 0.9)
    assert select_template(TaskResult(label=None), TEMPLATES) == (None, None)
    assert select_template(None, TEMPLATES) == (None, None)


def test_confident_routine_turn_gets_the_reply_and_no_handoff() -> None:
    a = build_assist(turn(score=0.93), ARTICLES, RULES)
    assert a.intent == "card_arrival" and a.confidence == 0.93
    assert a.reply == "Sorry it's late - track it in Cards."
    assert a.handoff is False and a.handoff_reasons == []
    assert a.articles == []  # a confident intent has its template; no articles


def test_customer_name_is_filled_or_dropped_with_its_punctuation() -> None:
    reply = "Sorry it's late, {customer_name} - track it. Thanks, {customer_name}."
    assert fill_reply(reply, "Ada") == "Sorry it's late, Ada - track it. Thanks, Ada."
    assert fill_reply(reply, None) == "Sorry it's late - track it. Thanks."
    assert fill_reply("{customer_name}, your card is on its way.", "") == "Your card is on its way."
    res = turn(score=0.9).model_copy(update={"meta": {"customer_name": "Ada"}})
    assert build_assist(res, [], RULES).reply == "Sorry it's late, Ada - track it in Cards."


def test_bundled_templates_cover_every_intent() -> None:
    templates = load_templates()
    assert len(templates) == 77
    assert sum(t.needs_human for t in templates.values()) == 12
    assert {t.urgency for t in templates.values()} == {"low", "normal", "high"}
    assert templates["lost_or_stolen_card"].needs_human


# --- the hand-off rule --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"score": 0.42}, [UNCERTAIN]),  # below the threshold
        ({"score": 0.8, "uncertain": True}, [UNCERTAIN]),  # fusion flagged it
        ({"intent": None}, [UNCERTAIN]),  # every intent model failed
        ({"intent": "oos", "score": 0.9}, [OUT_OF_SCOPE]),
        ({"intent": "weather_query", "score": 0.9}, [OUT_OF_SCOPE]),  # no template
        ({"intent": "lost_or_stolen_card", "score": 0.95}, [NEEDS_HUMAN]),
    ],
)
def test_intent_based_reasons(kwargs, expected) -> None:
    assert reasons(turn(**kwargs)) == expected


def test_threshold_is_a_rule_parameter() -> None:
    res = turn(score=0.6)
    assert reasons(res) == []
    assert reasons(res, AssistRules(handoff_below=0.7, templates=TEMPLATES)) == [UNCERTAIN]


def test_uncertain_or_out_of_scope_turns_get_the_articles() -> None:
    for res in (turn(score=0.3), turn(intent="oos")):
        a = build_assist(res, ARTICLES, RULES)
        assert a.handoff and a.articles == ARTICLES
    oos = build_assist(turn(intent="oos"), ARTICLES, RULES)
    assert oos.intent is None and oos.reply is None


@pytest.mark.parametrize(
    "text",
    ["WHERE IS MY CARD I NEED IT TODAY", "where is my card!!! i need it!!!"],
)
def test_urgent_turns_are_handed_off(text: str) -> None:
    assert reasons(turn(text=text)) == [URGENT]


def test_an_urgency_model_can_say_urgent() -> None:
    assert URGENT in reasons(turn(urgency=TaskResult(label="urgent", score=0.9)))
    assert URGENT not in reasons(turn(urgency=TaskResult(label="not_urgent", score=0.9)))


def test_toxic_turns_are_handed_off() -> None:
    assert reasons(turn(text="where is my f***ing card, you idiots")) == [TOXIC]
    assert reasons(turn(text="where is my card", toxicity=TaskResult(label="toxic", score=0.9))) == [TOXIC]
    assert reasons(turn(text="where is my card", toxicity=TaskResult(label="non-toxic", score=0.9))) == []
    # an uncertain toxicity label does not count on its own
    flagged = TaskResult(label="toxic", score=0.4, uncertain=True)
    assert reasons(turn(text="where is my card", toxicity=flagged)) == []


@pytest.mark.parametrize(
    ("text", "sentiment", "escalating"),
    [
        ("I want to speak to a manager about my card", None, True),
        ("Can I talk to a real person please", "positive", True),
        ("I will be making a formal complaint about this", None, True),
        ("This is the third time I ask where my card is", "negative", True),
        ("Nobody has answered me and my card is still missing", "negative", True),
        ("My card hasn't come, this is ridiculous", "negative", True),
        ("This is the third time I ask where my card is", "positive", False),  # not negative
        ("This is the third time I ask where my card is", None, False),  # sentiment unknown
        ("My card has not arrived yet", "negative", False),  # negative, nothing more
        ("Thanks again, the card arrived", "positive", False),
    ],
)
def test_escalation_from_the_turn_itself(text: str, sentiment: str | None, escalating: bool) -> None:
    assert (ESCALATING in reasons(turn(text=text, sentiment=sentiment))) is escalating


def test_repeated_attempts_or_a_serious_intent_are_not_escalation() -> None:
    res = turn(text="I typed the wrong PIN too many times", sentiment="negative")
    assert reasons(res) == []
    res = turn(text="my card was stolen", intent="lost_or_stolen_card", sentiment="negative")
    assert reasons(res) == [NEEDS_HUMAN]
    res = turn(text="I have asked you before and my card is still missing", sentiment="negative")
    assert reasons(res) == [ESCALATING]


def test_every_reason_is_listed() -> None:
    res = turn(text="WHY HAS NOBODY HELPED ME, YOU IDIOTS", intent="lost_or_stolen_card", score=0.3)
    res.outputs["sentiment"] = TaskResult(label="negative", score=0.95)
    a = build_assist(res, ARTICLES, RULES)
    assert a.handoff_reasons == [UNCERTAIN, NEEDS_HUMAN, URGENT, TOXIC, ESCALATING]
    assert a.intent == "lost_or_stolen_card" and a.articles == ARTICLES


# --- articles and the fuse post-processing step ---------------------------------------------------


def _kb_pred(model: str, articles: list[tuple[str, float]], error: str | None = None) -> Prediction:
    return Prediction(
        message_id="m1",
        task="kb",
        model_id=model,
        label=None if error else articles[0][0],
        score=None if error else articles[0][1],
        extra=None if error else {"articles": [{"id": i, "title": f"t{i}", "score": s} for i, s in articles]},
        error=error,
        ts=0,
    )


def test_articles_of_several_kb_models_are_merged_best_first() -> None:
    preds = [
        _kb_pred("a", [("kb-1", 0.7), ("kb-2", 0.5), ("kb-3", 0.4)]),
        _kb_pred("b", [("kb-2", 0.8), ("kb-4", 0.3)]),
        _kb_pred("c", [], error="model error: boom"),
    ]
    merged = merge_articles(preds, k=3)
    assert [(a.id, a.score) for a in merged] == [("kb-2", 0.8), ("kb-1", 0.7), ("kb-3", 0.4)]


def _plan(tasks: list[tuple[str, list[str]]]) -> Plan:
    return Plan(
        message_id="m1",
        text="is there a moon shuttle for orbit card holders",
        source="support-chat",
        key="c1",
        ts=0,
        lang="en",
        budget_ms=1000,
        deadline_ms=10_000,
        tasks=[TaskPlan(task=t, models=m, weights={x: 1.0 for x in m}) for t, m in tasks],
    )


def _intent_pred(label: str, p: float) -> Prediction:
    rest = {f"other_{n}": (1 - p) / 3 for n in range(3)}  # each below p: ``label`` wins with p
    return Prediction(
        message_id="m1", task="intent", model_id="i", label=label, score=p, probs={label: p, **rest}, ts=0
    )


def test_build_result_attaches_the_assist_to_support_turns() -> None:
    plan = _plan([("intent", ["i"]), ("kb", ["k"])])
    preds = {
        ("intent", "i"): _intent_pred("card_arrival", 0.31),
        ("kb", "k"): _kb_pred("k", [("kb-9", 0.66), ("kb-1", 0.4)]),
    }
    res = build_result(plan, preds, 5, partial=False, uncertain_below=0.5)
    assert res.assist is not None
    assert res.assist.handoff and UNCERTAIN in res.assist.handoff_reasons
    assert [a.id for a in res.assist.articles] == ["kb-9", "kb-1"]
    assert res.outputs["kb"].label == "kb-9"
    assert [a["id"] for a in res.outputs["kb"].extra["articles"]] == ["kb-9", "kb-1"]
    # the record round-trips through JSON with the new field
    assert Result.model_validate_json(res.model_dump_json()).assist == res.assist


def test_build_result_leaves_other_messages_alone() -> None:
    plan = _plan([("sentiment", ["s"])])
    pred = Prediction(
        message_id="m1", task="sentiment", model_id="s", label="positive", score=0.9, probs=None, ts=0
    )
    res = build_result(plan, {("sentiment", "s"): pred}, 5, partial=False, uncertain_below=0.5)
    assert res.assist is None


def test_a_support_turn_whose_intent_went_unserved_is_handed_off() -> None:
    plan = _plan([("kb", ["k"])]).model_copy(
        update={"lang": "de", "unserved": [Unserved(task="intent", reason="language 'de' is not served")]}
    )
    res = build_result(
        plan, {("kb", "k"): _kb_pred("k", [("kb-2", 0.3)])}, 5, partial=False, uncertain_below=0.5
    )
    assert res.assist is not None and res.assist.handoff_reasons == [UNCERTAIN]
    assert res.assist.reply is None and [a.id for a in res.assist.articles] == ["kb-2"]

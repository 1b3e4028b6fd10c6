from agents.results import build_result
from tests.unit.agents.factories import plan, pred


def test_fused_result_records_models_weights_and_agreement():
    p = plan()
    preds = {
        ("sentiment", "a"): pred(model="a", label="positive", p=0.9),
        ("sentiment", "b"): pred(model="b", label="negative", p=0.6),
    }
    r = build_result(p, preds, 50, partial=False, uncertain_below=0.5)
    out = r.outputs["sentiment"]
    assert out.label == "positive"
    assert {m.model_id for m in out.models} == {"a", "b"}
    assert out.agreement == 0.5
    assert not r.partial and r.missing == []


def test_partial_result_names_missing_models_and_errors_do_not_vote():
    p = plan(models=("a", "b", "c"))
    preds = {
        ("sentiment", "a"): pred(model="a", label="negative", p=0.7),
        ("sentiment", "b"): pred(model="b", error="model error: boom"),
    }
    r = build_result(p, preds, 50, partial=True, uncertain_below=0.5)
    out = r.outputs["sentiment"]
    assert r.partial and r.missing == ["sentiment:c"]
    assert out.label == "negative" and out.missing == ["c"]
    assert [m.error for m in out.models if m.model_id == "b"] == ["model error: boom"]


def test_company_names_from_ner_get_the_ticker_key():
    from agents.results import company_key

    assert company_key("Apple") == "AAPL"
    assert company_key("Some Unknown Co") is None


def test_producer_can_ask_for_a_majority_vote():
    from agents.planning import _strategy

    assert _strategy("sentiment", ["a", "b", "c"], "majority_vote") == "majority_vote"
    assert _strategy("entities", ["a", "b"], "majority_vote") == "span_vote"

from models.fusion import Span, Vote, majority_vote, span_vote, weighted_vote


def test_weighted_vote_averages_distributions_by_weight():
    votes = [
        Vote("a", 0.75, "positive", 0.6, {"positive": 0.6, "negative": 0.4}),
        Vote("b", 0.25, "negative", 0.7, {"positive": 0.3, "negative": 0.7}),
    ]
    f = weighted_vote(votes)
    assert f.label == "positive"
    assert abs(f.probs["positive"] - (0.75 * 0.6 + 0.25 * 0.3)) < 1e-6
    assert f.agreement == 0.75


def test_weighted_vote_flags_uncertainty():
    votes = [
        Vote("a", 0.5, "x", probs={"x": 0.5, "y": 0.5}),
        Vote("b", 0.5, "y", probs={"x": 0.45, "y": 0.55}),
    ]
    assert weighted_vote(votes, uncertain_below=0.6).uncertain


def test_majority_vote_and_tie_break_by_weight():
    votes = [Vote("a", 0.2, "x"), Vote("b", 0.5, "y"), Vote("c", 0.3, "x")]
    assert majority_vote(votes).label == "x"
    tie = [Vote("a", 0.2, "x"), Vote("b", 0.8, "y")]
    assert majority_vote(tie).label == "y"


def test_empty_votes_are_uncertain():
    assert weighted_vote([]).label is None and weighted_vote([]).uncertain


def test_span_vote_keeps_agreed_spans_and_drops_lonely_ones():
    spans = [
        Span("a", 1, 0, 5, "ORG", "Apple"),
        Span("b", 1, 0, 5, "ORG", "Apple"),
        Span("a", 1, 10, 15, "PER", "Cook"),
        Span("c", 1, 20, 24, "TICKER", "AAPL", key="AAPL"),
    ]
    ner = {"a": 1.0, "b": 1.0}
    capable = {"ORG": ner, "PER": ner, "TICKER": {"c": 1.0}}
    kept = span_vote(spans, capable)
    texts = {s.text for s in kept}
    assert "Apple" in texts  # both NER models
    assert "Cook" not in texts  # one NER model of two is not a majority
    assert "AAPL" in texts  # only the ticker extractor can produce TICKER

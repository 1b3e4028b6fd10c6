import numpy as np

from agents.results import stacked
from models.fusion import Vote
from models.stacking import Stacker, load_stacker


def test_stacker_is_a_softmax_over_member_probabilities():
    s = Stacker(
        "t", ("a", "b"), ("neg", "pos"), W=np.array([[0, 0, 0, 0], [0, 4.0, 0, 4.0]]), b=np.array([0.0, -4.0])
    )
    confident = s.predict({"a": {"neg": 0.0, "pos": 1.0}, "b": {"neg": 0.0, "pos": 1.0}})
    doubtful = s.predict({"a": {"neg": 1.0, "pos": 0.0}, "b": {"neg": 1.0, "pos": 0.0}})
    assert confident["pos"] > 0.95 and doubtful["neg"] > 0.95
    assert abs(sum(confident.values()) - 1) < 1e-6


def test_committed_stackers_load_and_fall_back_without_a_member():
    stacker = load_stacker("fin_sentiment")
    assert stacker is not None and len(stacker.members) >= 2
    votes = [
        Vote(m, 0.5, "neutral", 0.8, {"negative": 0.1, "neutral": 0.8, "positive": 0.1})
        for m in stacker.members
    ]
    fused = stacked("fin_sentiment", votes, 0.5)
    assert fused is not None and fused.label in stacker.labels
    assert stacked("fin_sentiment", votes[:1], 0.5) is None  # a member missing: no stacking

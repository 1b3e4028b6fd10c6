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


def test_the_most_accurate_strategy_is_chosen_and_a_tie_goes_to_fewer_models():
    from models.stacking import choose_strategy

    assert choose_strategy({"single": 0.845, "weighted_vote": 0.83, "stacking": 0.833}) == "single"
    assert choose_strategy({"single": 0.878, "weighted_vote": 0.88, "stacking": 0.882}) == "stacking"
    assert choose_strategy({"single": 0.9, "weighted_vote": 0.9, "stacking": 0.9}) == "single"
    assert choose_strategy({"single": 0.8, "weighted_vote": 0.85, "stacking": 0.85}) == "weighted_vote"


def test_vote_accuracy_is_fuses_weighted_soft_vote():
    from models.stacking import vote_accuracy

    probs = {
        "a": [{"neg": 0.9, "pos": 0.1}, {"neg": 0.6, "pos": 0.4}],
        "b": [{"neg": 0.2, "pos": 0.8}, {"neg": 0.1, "pos": 0.9}],
    }
    # a outweighs b: item 1 -> neg (0.75*0.9+0.25*0.2=0.725), item 2 -> neg (0.475) vs pos (0.525)
    assert vote_accuracy(probs, {"a": 0.75, "b": 0.25}, ["neg", "pos"]) == 1.0
    assert vote_accuracy(probs, {"a": 0.75, "b": 0.25}, ["neg", "neg"]) == 0.5


def test_committed_fusion_choices_follow_their_own_validation_figures():
    from models.stacking import STRATEGY_RANK, TASKS, choose_strategy, load_choice

    for task in TASKS:
        choice = load_choice(task)
        assert choice is not None, f"{task}: run python -m models.stacking {task}"
        assert set(choice.validation_accuracy) == set(STRATEGY_RANK)
        assert choice.strategy == choose_strategy(choice.validation_accuracy)
        assert choice.best in choice.members

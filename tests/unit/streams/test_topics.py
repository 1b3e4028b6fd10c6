import pytest

from streams.topics import Topics


def test_names_carry_the_prefix():
    t = Topics("x.")
    assert t.input == "x.in" and t.results == "x.results" and t.model("vader-fin") == "x.model.vader-fin"
    assert t.tail_target("dlq") == "x.dlq"


def test_bad_model_id_and_target_are_refused():
    with pytest.raises(ValueError):
        Topics("sf.").model("a b")
    with pytest.raises(ValueError, match="unknown tail target"):
        Topics("sf.").tail_target("everything")

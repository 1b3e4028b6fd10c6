import pytest

from agents.worker import parse_roles


def test_roles_and_model_lists():
    spec = parse_roles("recognize,infer:vader-fin,tfidf-fin,fuse")
    assert spec.roles == ["recognize", "infer", "fuse"]
    assert spec.models == ["vader-fin", "tfidf-fin"]


def test_plain_infer_serves_every_model():
    assert parse_roles("infer").models is None


def test_unknown_role_is_an_error():
    with pytest.raises(ValueError, match="unknown role"):
        parse_roles("recognise")

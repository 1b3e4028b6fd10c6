import pytest
from pydantic import ValidationError

from streams.records import InputMessage, parse_ts


def test_minimal_message_gets_defaults():
    m = InputMessage.model_validate({"text": "hello"})
    assert m.source == "default" and m.id is None and m.tasks is None


@pytest.mark.parametrize(
    "payload",
    [
        {"text": 42},
        {"text": "ok", "tasks": "sentiment"},
        {"text": "ok", "colour": "red"},
        {"text": "   "},
        {"text": "a\x00b"},
        {"id": "x"},
        {"text": "ok", "ts": True},
        {"text": "ok", "ts": "yesterday"},
        {"text": "ok", "meta": [1, 2]},
    ],
)
def test_invalid_messages_are_rejected(payload):
    with pytest.raises(ValidationError):
        InputMessage.model_validate(payload)


def test_ts_accepts_epoch_ms_and_iso8601():
    assert parse_ts(1767225600000) == 1767225600000
    assert parse_ts("2026-01-01T00:00:00Z") == 1767225600000
    assert parse_ts("2026-01-01T01:00:00+01:00") == 1767225600000


def test_ts_without_timezone_is_an_error():
    with pytest.raises(ValueError, match="timezone"):
        parse_ts("2026-01-01T00:00:00")

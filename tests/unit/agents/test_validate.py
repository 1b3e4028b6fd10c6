import base64

import orjson
import pytest

from agents.validate import Where, parse_input
from streams.records import DeadLetter, InputMessage

LIMITS = {"max_record_bytes": 4096, "max_text_bytes": 1024}


def reason(raw: bytes) -> str:
    out = parse_input(raw, **LIMITS, where=Where("sf.in", 0, 1))
    assert isinstance(out, DeadLetter), out
    return out.reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "empty"),
        (b"not json", "not_json"),
        (b"\xff\xfe{}", "not_utf8"),
        (b"[1,2]", "not_object"),
        (b"null", "not_object"),
        (b'{"text": NaN}', "not_json"),
        (b'{"text": 1}', "invalid_field"),
        (b'{"text": ""}', "invalid_field"),
        (b'{"text": "ok", "extra": 1}', "invalid_field"),
        (b"[" * 2000 + b"]" * 2000, "not_json"),
        (b'{"text": "' + b"a" * 5000 + b'"}', "too_large"),
        (b'{"text": "' + b"a" * 2000 + b'"}', "text_too_large"),
    ],
)
def test_bad_input_becomes_a_dead_letter_with_a_precise_reason(raw, expected):
    assert reason(raw) == expected


def test_dead_letter_keeps_the_original_bytes():
    out = parse_input(b"\xff\xfe bad", **LIMITS)
    assert isinstance(out, DeadLetter)
    assert out.original_encoding == "base64"
    assert base64.b64decode(out.original) == b"\xff\xfe bad"


def test_unknown_field_is_named_in_the_detail():
    out = parse_input(b'{"text": "ok", "colour": "red"}', **LIMITS)
    assert isinstance(out, DeadLetter) and "colour" in out.detail


def test_valid_message_passes():
    raw = orjson.dumps({"id": "a", "text": "Apple beats estimates", "source": "newswire", "ts": 5})
    out = parse_input(raw, **LIMITS)
    assert isinstance(out, InputMessage) and out.id == "a" and out.ts == 5

"""Property tests: no input, however hostile, makes validation raise."""

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.text import clean_text
from agents.validate import parse_input
from streams.records import DeadLetter, InputMessage

LIMITS = {"max_record_bytes": 65_536, "max_text_bytes": 16_384}
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_any_bytes_become_a_message_or_a_dead_letter(raw: bytes):
    out = parse_input(raw, **LIMITS)
    assert isinstance(out, InputMessage | DeadLetter)
    if isinstance(out, DeadLetter):
        assert out.reason and out.detail and out.original_size == len(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["id", "text", "source", "key", "ts", "tasks", "meta", "x"]), json_values)
)
def test_any_json_object_becomes_a_message_or_a_dead_letter(obj):
    out = parse_input(orjson.dumps(obj), **LIMITS)
    assert isinstance(out, InputMessage | DeadLetter)
    if isinstance(out, InputMessage):
        assert out.text.strip()


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=500))
def test_any_text_is_accepted_or_rejected_with_a_reason(text: str):
    out = parse_input(orjson.dumps({"text": text}), **LIMITS)
    if clean_text(text) and "\x00" not in text:
        assert isinstance(out, InputMessage)
    else:
        assert isinstance(out, DeadLetter) and out.reason == "invalid_field"


def test_huge_numbers_and_non_finite_values_are_dead_letters():
    for raw in (
        b'{"text": "x", "ts": 1e400}',
        b'{"text": "x", "ts": 99999999999999999999999}',
        b'{"text": "x", "ts": Infinity}',
        b'{"text": NaN}',
    ):
        out = parse_input(raw, **LIMITS)
        assert isinstance(out, DeadLetter), raw

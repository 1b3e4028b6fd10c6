"""Raw input bytes -> a valid InputMessage, or a DeadLetter saying exactly why not."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from agents.text import clean_text
from streams.records import DeadLetter, InputMessage


@dataclass(slots=True, frozen=True)
class Where:
    """Where a raw record came from (for the dead letter)."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


def dead_letter(
    raw: bytes | None,
    reason: str,
    detail: str,
    stage: str,
    where: Where,
    message_id: str | None = None,
) -> DeadLetter:
    """A DeadLetter carrying the original bytes (as text, or base64 if not UTF-8)."""
    raw = raw or b""
    keep = raw[:65_536]  # enough to debug; a 10 MB payload is not copied whole
    try:
        original, encoding = keep.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        original, encoding = base64.b64encode(keep).decode("ascii"), "base64"
    return DeadLetter(
        reason=reason,
        detail=detail + (f" (first {len(keep)} of {len(raw)} bytes kept)" if len(raw) > len(keep) else ""),
        stage=stage,
        message_id=message_id,
        original=original,
        original_encoding=encoding,  # type: ignore[arg-type]
        original_size=len(raw),
        topic=where.topic,
        partition=where.partition,
        offset=where.offset,
        ts=int(time.time() * 1000),
    )


NOWHERE = Where()


def parse_input(
    raw: bytes | None, *, max_record_bytes: int, max_text_bytes: int, where: Where = NOWHERE
) -> InputMessage | DeadLetter:
    """Validate one raw record. Size is checked before any parsing."""
    stage = "recognize"
    if raw is None or len(raw) == 0:
        return dead_letter(raw, "empty", "the record has no value; publish a JSON object", stage, where)
    if len(raw) > max_record_bytes:
        return dead_letter(
            raw,
            "too_large",
            f"the record is {len(raw)} bytes, over the {max_record_bytes}-byte limit "
            "(STREAMFUSE_MAX_RECORD_BYTES); split the text or raise the limit",
            stage,
            where,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return dead_letter(
            raw,
            "not_utf8",
            f"the record is not valid UTF-8 ({exc.reason} at byte {exc.start}); encode the JSON as UTF-8",
            stage,
            where,
        )
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return dead_letter(
            raw,
            "not_json",
            f"the record is not valid JSON: {exc}; publish one JSON object "
            "per record (NaN and Infinity are not JSON)",
            stage,
            where,
        )
    if not isinstance(data, dict):
        return dead_letter(
            raw,
            "not_object",
            f'the record is a JSON {_json_type(data)}, not an object with a "text" field',
            stage,
            where,
        )
    message_id = data.get("id") if isinstance(data.get("id"), str) else None
    try:
        msg = InputMessage.model_validate(data)
    except ValidationError as exc:
        return dead_letter(raw, "invalid_field", _explain(exc), stage, where, message_id)
    if not clean_text(msg.text):
        return dead_letter(
            raw,
            "invalid_field",
            "text has only control or zero-width characters; send readable text",
            stage,
            where,
            message_id,
        )
    size = len(msg.text.encode("utf-8"))
    if size > max_text_bytes:
        return dead_letter(
            raw,
            "text_too_large",
            f"text is {size} bytes, over the {max_text_bytes}-byte limit (STREAMFUSE_MAX_TEXT_BYTES)",
            stage,
            where,
            message_id,
        )
    return msg


def _json_type(value: object) -> str:
    return {
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        if err["type"] == "extra_forbidden":
            parts.append(
                f"unknown field {loc!r} (allowed: id, text, source, key, ts, tasks, meta; "
                "put extra data under meta)"
            )
        elif err["type"] == "missing":
            parts.append(f"missing required field {loc!r}")
        else:
            parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)

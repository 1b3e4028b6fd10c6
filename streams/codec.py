"""Bytes <-> records, with orjson. Keep Kafka's payloads in one place."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


def dumps(record: BaseModel | dict[str, Any]) -> bytes:
    """Serialise a record (or plain dict) to JSON bytes."""
    if isinstance(record, BaseModel):
        return orjson.dumps(record.model_dump(mode="json", exclude_none=True))
    return orjson.dumps(record)


def loads(data: bytes, model: type[T]) -> T:
    """Parse JSON bytes produced by streamfuse into a record (trusted internal data)."""
    return model.model_validate(orjson.loads(data))


def key_bytes(key: str | None) -> bytes | None:
    return None if key is None else key.encode("utf-8")

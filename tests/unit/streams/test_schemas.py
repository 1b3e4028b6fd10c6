"""The published JSON Schemas (schemas/) match the record models."""

from pathlib import Path

import orjson

from streams.records import RECORD_TYPES

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def test_committed_schemas_are_current():
    for name, model in RECORD_TYPES.items():
        committed = orjson.loads((SCHEMAS / f"{name}.schema.json").read_bytes())
        assert committed == model.model_json_schema(), (
            f"schemas/{name}.schema.json is stale: run `streamfuse schema --out schemas`"
        )

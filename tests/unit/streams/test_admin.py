"""Topic readiness: a new topic counts as ready only when every partition has a leader."""

from __future__ import annotations

from streams.admin import _all_led


def _topic(*leaders: int, error: int = 0) -> dict:
    parts = [{"error_code": 0, "partition": i, "leader": lead} for i, lead in enumerate(leaders)]
    return {"error_code": error, "topic": "t", "partitions": parts}


def test_every_partition_led_is_ready():
    assert _all_led([_topic(1, 1, 2), _topic(3)])


def test_a_partition_without_a_leader_is_not_ready():
    assert not _all_led([_topic(1, -1, 1)])


def test_a_topic_error_or_no_partitions_is_not_ready():
    assert not _all_led([_topic(1, error=3)])
    assert not _all_led([{"error_code": 0, "topic": "t", "partitions": []}])

"""Reliability on the real broker: workers SIGKILLed, the broker restarted, nothing lost."""

from __future__ import annotations

import asyncio
import json

import pytest

from streams.chaos import ChaosReport, run_chaos
from streams.settings import Settings

pytestmark = pytest.mark.chaos


def _chaos(kafka: Settings, tmp_path, guarantee: str) -> ChaosReport:
    report = asyncio.run(
        run_chaos(
            kafka,
            messages=10_000,
            rate=250,
            per_role=2,
            kill_every=4.0,
            broker_restart=True,
            log_dir=tmp_path / "logs",
            guarantee=guarantee,
        )
    )
    print(json.dumps(report.to_dict(), indent=2))
    return report


def _assert_every_message_accounted_for(report: ChaosReport) -> None:
    assert report.acknowledged == 10_000
    assert report.workers_killed >= 5
    assert report.broker_restarts == 1
    assert report.lost == 0, (
        f"lost {report.lost} ({report.lost_planned} of them planned by recognize; "
        f"drain {report.drain_seconds}s; uncommitted per group {report.group_lag}): {report.lost_sample}"
    )
    assert report.dead_lettered == report.invalid_sent  # the invalid ones, and only those
    assert report.unique_results == report.acknowledged - report.invalid_sent


def test_nothing_is_lost_through_kills_and_a_broker_restart(kafka: Settings, tmp_path):
    report = _chaos(kafka, tmp_path, "at_least_once")
    _assert_every_message_accounted_for(report)
    # at-least-once: redeliveries that fuse's dedupe could not see, bounded
    assert report.duplicated <= 0.05 * report.acknowledged


def test_exactly_once_loses_nothing_and_repeats_nothing(kafka: Settings, tmp_path):
    report = _chaos(kafka, tmp_path, "exactly_once")
    _assert_every_message_accounted_for(report)
    assert report.duplicated == 0, f"{report.duplicated} repeated: {report.duplicate_detail}"

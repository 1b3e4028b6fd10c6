"""Overload: a burst of about 10x the sustainable rate degrades allocation to cheaper models,
then it recovers; bounded memory, nothing lost."""

from __future__ import annotations

import asyncio
import json

import pytest

from streams.chaos import run_overload
from streams.settings import Settings

pytestmark = pytest.mark.chaos


def test_burst_degrades_then_recovers_without_loss(kafka: Settings, tmp_path):
    report = asyncio.run(run_overload(kafka, log_dir=tmp_path / "logs"))
    print(json.dumps(report.to_dict(), indent=2))
    assert report.lost == 0
    degraded, heavy = report.degraded_share, report.heavy_model_share
    assert degraded["burst"] > degraded["before"], degraded
    assert heavy["burst"] < heavy["before"], heavy  # the allocator moved work to cheaper models
    assert heavy["recovered"] >= 0.8 * heavy["before"], heavy  # and moved it back
    assert all(mb < 4096 for mb in report.peak_rss_mb.values()), report.peak_rss_mb
    assert report.drain_seconds < 120

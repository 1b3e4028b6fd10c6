"""The local broker's JVM options and cluster id, and which JIT a benchmark's broker gets."""

import contextlib

import pytest

from streams import broker, cli
from streams.settings import Settings

C1_ONLY = "-XX:TieredStopAtLevel=1"


def test_quick_jit_stops_at_c1_and_full_jit_keeps_the_jvm_default(tmp_path) -> None:
    quick = broker.jvm_options(Settings(state_dir=tmp_path))
    full = broker.jvm_options(Settings(state_dir=tmp_path, broker_jit="full"))
    assert C1_ONLY in quick
    assert C1_ONLY not in full
    assert [o for o in quick if o != C1_ONLY] == full


@pytest.mark.parametrize(("env", "want"), [(None, "full"), ("quick", "quick"), ("full", "full")])
def test_a_benchmark_starts_its_broker_with_full_jit_unless_told(monkeypatch, tmp_path, env, want) -> None:
    monkeypatch.setenv("STREAMFUSE_STATE_DIR", str(tmp_path))
    if env is None:
        monkeypatch.delenv("STREAMFUSE_BROKER_JIT", raising=False)
    else:
        monkeypatch.setenv("STREAMFUSE_BROKER_JIT", env)
    cli.get_settings.cache_clear()
    seen: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def broker_for(s: Settings):
        seen.append(("broker", s.broker_jit))
        yield

    async def start(s: Settings, out_dir) -> dict:
        seen.append(("bench", s.broker_jit))
        return {}

    monkeypatch.setattr(cli, "_broker_if_needed", broker_for)
    try:
        cli._run_report(start, str(tmp_path), True, lambda r: None)
    finally:
        cli.get_settings.cache_clear()
    assert seen == [("broker", want), ("bench", want)]


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch) -> None:
    # 0xf8.. encodes to "-" first in URL-safe base64: the storage tool would take it for an option
    dash, plain = bytes([0xF8]) + bytes(15), bytes(16)
    draws = iter([dash, dash, plain])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: type("U", (), {"bytes": next(draws)})())
    cid = broker._cluster_id()
    assert not cid.startswith("-")
    assert len(cid) == 22

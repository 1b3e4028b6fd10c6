"""The local broker's log: read from this start's offset, rotated once large."""

from pathlib import Path

from streams import broker


def test_readiness_reads_only_what_this_start_wrote(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    log.write_text("[old run] Kafka Server started\n")
    start = log.stat().st_size
    with log.open("a") as f:
        f.write("[this run] starting\n")
    assert "Kafka Server started" not in broker._read_from(log, start)
    assert broker._read_from(log, 0).startswith("[old run]")
    assert broker._read_from(tmp_path / "missing.log", 0) == ""


def test_a_large_log_is_rotated_and_a_small_one_kept(tmp_path: Path, monkeypatch) -> None:
    log = tmp_path / "broker.log"
    log.write_bytes(b"x" * 100)
    monkeypatch.setattr(broker, "LOG_ROTATE_BYTES", 1000)
    broker._rotate_log(log)
    assert log.exists()
    log.write_bytes(b"x" * 2000)
    broker._rotate_log(log)
    assert not log.exists() and (tmp_path / "broker.log.1").stat().st_size == 2000

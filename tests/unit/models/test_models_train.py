"""Training helpers of models.train that need no data and no encoder."""

from __future__ import annotations

import numpy as np

from models.train import agreement_targets


def test_agreement_targets_put_the_agreed_share_on_the_label() -> None:
    soft = agreement_targets([1.0, 0.5, 0.66], np.array([0, 2, 1]), 3)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(soft[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(soft[1], [0.25, 0.25, 0.5])
    np.testing.assert_allclose(soft[2], [0.17, 0.66, 0.17], rtol=1e-5)


def test_agreement_targets_keep_the_label_the_argmax() -> None:
    y = np.array([0, 1, 2, 1])
    soft = agreement_targets([0.5, 0.66, 0.75, 1.0], y, 3)
    assert soft.argmax(1).tolist() == y.tolist()

"""Refitting a LoRA recipe on training + validation data: the plan it takes from its
validation run, and a training loop that keeps the last epoch and stops early."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from models.lora import _fit
from models.recipes import RECIPES
from models.train import refit_plan

HP = {"epochs": 4, "batch_size": 2, "lr_lora": 1e-2, "lr_head": 1e-2}


def _base_config(hparams: dict[str, Any], best_epoch: int = 3, temperature: float = 2.5) -> dict[str, Any]:
    lora = hparams["lora"] | {"target_modules": "whatever"}
    return {
        "temperature": temperature,
        "metadata": {"hparams": hparams | {"lora": lora}, "best_epoch": best_epoch},
    }


def test_refit_takes_the_kept_epoch_and_temperature_of_its_validation_run() -> None:
    refit = RECIPES["lora-fin-refit"]
    base = _base_config(dict(RECIPES["lora-fin"].hparams))
    assert refit_plan(refit, base) == (3, 2.5)


def test_refit_refuses_a_validation_run_with_other_hyperparameters() -> None:
    refit = RECIPES["lora-fin-refit"]
    base = _base_config(dict(RECIPES["lora-fin"].hparams) | {"epochs": 6})
    with pytest.raises(ValueError, match="hyper-parameters differ"):
        refit_plan(refit, base)


def test_the_refit_trains_on_train_and_validation_and_is_not_served() -> None:
    refit, base = RECIPES["lora-fin-refit"], RECIPES["lora-fin"]
    ((_, train_fn),) = refit.train_sets.items()
    ((_, base_fn),) = base.train_sets.items()
    assert base.validation is not None
    val = base.validation()
    assert train_fn().texts == base_fn().texts + val.texts
    assert refit.validation is None and refit.serving is False
    assert refit.tests.keys() == base.tests.keys()


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.encoder(x)))


def _train(hp: dict[str, Any], stop_after: int | None) -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    model = _Tiny()
    x, y = torch.randn(8, 3), torch.tensor([0, 1] * 4)

    def batch_loss(idx: list[int]) -> torch.Tensor:
        return nn.functional.cross_entropy(model(x[idx]), y[idx])

    res = _fit(model, hp, [1] * 8, 0, lambda _msg: None, batch_loss, None, "none", stop_after=stop_after)
    return model, res


def test_fit_without_validation_keeps_the_last_epoch() -> None:
    _, res = _train(HP, None)
    assert [h["epoch"] for h in res.history] == [1, 2, 3, 4]
    assert all("val_macro_f1" not in h for h in res.history)
    assert res.best_epoch == 4


def test_stop_after_ends_early_on_the_full_runs_learning_rate_schedule() -> None:
    stopped, res = _train(HP, stop_after=2)
    assert [h["epoch"] for h in res.history] == [1, 2] and res.best_epoch == 2
    # Two epochs of a four-epoch schedule are not a two-epoch schedule (which decays to 0).
    short, _ = _train(HP | {"epochs": 2}, None)
    assert not torch.equal(stopped.head.weight, short.head.weight)

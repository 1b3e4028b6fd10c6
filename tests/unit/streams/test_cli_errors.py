"""Model commands answer a wrong or missing model id with a message, never a traceback."""

from __future__ import annotations

from click.testing import CliRunner

from streams.cli import main


def _said(result) -> str:
    return " ".join(result.output.split())  # the terminal wraps long messages


def test_eval_of_an_unknown_model_says_where_to_look() -> None:
    result = CliRunner().invoke(main, ["eval", "no-such-model"])
    assert result.exit_code == 2
    assert "unknown model 'no-such-model'" in _said(result) and "streamfuse models" in _said(result)


def test_eval_of_a_full_checkpoint_not_trained_here_says_how_to_get_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("STREAMFUSE_LOCAL_ARTIFACTS", str(tmp_path))
    result = CliRunner().invoke(main, ["eval", "ft-fin"])
    assert result.exit_code == 2
    assert "streamfuse train ft-fin" in _said(result) and str(tmp_path) in _said(result)


def test_train_of_an_unknown_model_lists_the_recipes() -> None:
    result = CliRunner().invoke(main, ["train", "no-such-model"])
    assert result.exit_code == 2
    assert "no recipe for 'no-such-model'" in _said(result) and "lora-fin" in _said(result)

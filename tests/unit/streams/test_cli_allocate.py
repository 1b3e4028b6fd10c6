"""`streamfuse allocate`: the planner's choice per task and budget on an idle pipeline,
from the committed catalog and fusion choices."""

from __future__ import annotations

import orjson
from click.testing import CliRunner

from streams.cli import main


def _rows(*args: str) -> list[dict]:
    result = CliRunner().invoke(main, ["allocate", *args, "--json"])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output)


def test_each_budget_gets_a_row_per_task() -> None:
    rows = _rows("fin_sentiment", "entities", "--budget", "300", "--budget", "2000")
    assert [(r["budget_ms"], r["task"]) for r in rows] == [
        (300, "fin_sentiment"),
        (300, "entities"),
        (2000, "fin_sentiment"),
        (2000, "entities"),
    ]
    assert all(r["models"] and r["reason"] for r in rows)
    assert {r["strategy"] for r in rows if r["task"] == "entities"} == {"span_vote"}


def test_the_fusion_choice_is_applied_as_the_planner_applies_it() -> None:
    # validation chose lora-fin alone for fin_sentiment (models/artifacts/stack-fin_sentiment)
    (row,) = _rows("fin_sentiment", "--budget", "2000")
    assert row["models"] == ["lora-fin"] and row["strategy"] == "single"
    assert "ensemble not run" in row["reason"]


def test_a_tight_budget_degrades_to_a_cheaper_model() -> None:
    (tight,) = _rows("fin_sentiment", "--budget", "10")
    assert tight["models"] != ["lora-fin"]


def test_an_unknown_task_says_which_tasks_exist() -> None:
    result = CliRunner().invoke(main, ["allocate", "weather"])
    assert result.exit_code == 2
    assert "unknown task 'weather'" in result.output and "fin_sentiment" in result.output


def test_every_served_task_by_default() -> None:
    tasks = {r["task"] for r in _rows()}
    assert {"fin_sentiment", "sentiment", "intent", "entities", "kb", "toxicity"} <= tasks
    assert "domain" not in tasks  # recognize's own classifier is not a task producers ask for

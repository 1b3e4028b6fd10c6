"""Terminal views (rich): live tables for tail and the demo."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

SENTIMENT_STYLE = {
    "positive": "green",
    "negative": "red",
    "neutral": "yellow",
    "bullish": "green",
    "bearish": "red",
}


def _task_summary(outputs: dict[str, Any]) -> Text:
    text = Text()
    for task, out in outputs.items():
        if text:
            text.append("  ")
        if out.get("entities") is not None:
            names = ", ".join((e.get("key") or e["text"]) for e in out["entities"][:4]) or "-"
            text.append(f"{task}: ", style="dim")
            text.append(names, style="cyan")
            continue
        label = out.get("label") or "?"
        score = out.get("score")
        text.append(f"{task}: ", style="dim")
        text.append(label, style=SENTIMENT_STYLE.get(label, "bold"))
        if score is not None:
            text.append(f" {score:.2f}", style="dim")
        if out.get("uncertain"):
            text.append(" ?", style="magenta")
    return text


def _models(outputs: dict[str, Any]) -> str:
    names = []
    for out in outputs.values():
        names.extend(m["model_id"] for m in out.get("models", []))
    return ", ".join(dict.fromkeys(names))


def results_table(rows: list[dict[str, Any]], title: str = "latest results") -> Table:
    table = Table(title=title, expand=True, show_lines=False)
    table.add_column("id", style="dim", no_wrap=True, max_width=12)
    table.add_column("source", no_wrap=True)
    table.add_column("text", ratio=3, overflow="ellipsis", no_wrap=True)
    table.add_column("outputs", ratio=3)
    table.add_column("models", ratio=2, style="dim", overflow="fold")
    table.add_column("flags", no_wrap=True)
    for r in rows:
        flags = []
        if r.get("partial"):
            flags.append("[magenta]partial[/]")
        if r.get("unserved"):
            flags.append(f"[yellow]unserved:{r.get('lang')}[/]")
        table.add_row(
            str(r.get("id", ""))[:12],
            r.get("source", ""),
            r.get("text", ""),
            _task_summary(r.get("outputs", {})),
            _models(r.get("outputs", {})),
            " ".join(flags),
        )
    return table


def dlq_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="dead letters", expand=True)
    table.add_column("reason", style="red", no_wrap=True)
    table.add_column("detail", ratio=3)
    table.add_column("original", ratio=2, overflow="ellipsis", no_wrap=True)
    for r in rows:
        table.add_row(r.get("reason", ""), r.get("detail", ""), r.get("original", "")[:200])
    return table


def alerts_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="alerts", expand=True)
    table.add_column("rule", style="bold red", no_wrap=True)
    table.add_column("key", no_wrap=True)
    table.add_column("message", ratio=4)
    table.add_column("evidence", justify="right")
    for r in rows:
        table.add_row(
            r.get("rule", ""),
            f"{r.get('dimension')}:{r.get('key')}",
            r.get("message", ""),
            str(len(r.get("evidence", []))),
        )
    return table


def windows_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="windows", expand=True)
    for col in ("dimension", "key", "window", "count", "sentiment", "top intents / entities"):
        table.add_column(col)
    for r in rows:
        mean = r.get("sentiment_mean")
        tops = r.get("top_intents") or r.get("top_entities") or []
        table.add_row(
            r.get("dimension", ""),
            r.get("key", ""),
            r.get("window", ""),
            str(r.get("count")),
            "-" if mean is None else f"{mean:+.2f}",
            ", ".join(f"{k}({n})" for k, n in tops[:3]),
        )
    return table


TABLES = {
    "results": results_table,
    "dlq": dlq_table,
    "alerts": alerts_table,
    "windows": windows_table,
}


class DemoView:
    """The live summary `streamfuse up --demo` shows while the feeds replay."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.results: deque[dict[str, Any]] = deque(maxlen=8)
        self.alerts: deque[dict[str, Any]] = deque(maxlen=5)
        self.dlq: deque[dict[str, Any]] = deque(maxlen=4)
        self.n_results = 0
        self.n_dlq = 0
        self.n_partial = 0
        self.n_windows = 0
        self.n_alerts = 0
        self.labels: Counter[str] = Counter()
        self.models: Counter[str] = Counter()
        self.ids: set[str] = set()
        self.duplicates = 0

    def add(self, topic_kind: str, value: dict[str, Any]) -> None:
        if topic_kind == "results":
            if value["id"] in self.ids:
                self.duplicates += 1
                return
            self.ids.add(value["id"])
            self.n_results += 1
            self.n_partial += bool(value.get("partial"))
            self.results.appendleft(value)
            for task, out in value.get("outputs", {}).items():
                if out.get("label"):
                    self.labels[f"{task}={out['label']}"] += 1
                for m in out.get("models", []):
                    self.models[m["model_id"]] += 1
        elif topic_kind == "dlq":
            self.n_dlq += 1
            self.dlq.appendleft(value)
        elif topic_kind == "alerts":
            self.n_alerts += 1
            self.alerts.appendleft(value)
        elif topic_kind == "windows":
            self.n_windows += 1

    @property
    def accounted(self) -> int:
        return self.n_results + self.n_dlq

    def render(self) -> Group:
        head = Text.assemble(
            ("streamfuse demo  ", "bold"),
            (f"{self.accounted}/{self.expected} accounted  ", "bold green"),
            f"results {self.n_results}  dead letters {self.n_dlq}  partial {self.n_partial}  ",
            f"windows {self.n_windows}  alerts {self.n_alerts}",
        )
        parts: list[Any] = [Panel(head), results_table(list(self.results))]
        if self.alerts:
            parts.append(alerts_table(list(self.alerts)))
        if self.dlq:
            parts.append(dlq_table(list(self.dlq)))
        return Group(*parts)

    def summary(self) -> Table:
        table = Table(title="demo summary")
        table.add_column("what")
        table.add_column("count", justify="right")
        for what, n in [
            ("messages sent", self.expected),
            ("results", self.n_results),
            ("dead letters", self.n_dlq),
            ("partial results", self.n_partial),
            ("duplicate results dropped by the viewer", self.duplicates),
            ("windows", self.n_windows),
            ("alerts", self.n_alerts),
        ]:
            table.add_row(what, str(n))
        for model, n in self.models.most_common():
            table.add_row(f"predictions from {model}", str(n))
        by_task: dict[str, list[tuple[str, int]]] = {}
        for label, n in self.labels.most_common():
            by_task.setdefault(label.split("=", 1)[0], []).append((label, n))
        for labels in by_task.values():
            for label, n in labels[:6]:
                table.add_row(label, str(n))
            if len(labels) > 6:
                table.add_row(f"{labels[0][0].split('=')[0]}: {len(labels) - 6} more labels", "")
        return table

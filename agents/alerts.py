"""Alert rules over closed windows and conversation turns (pure, configurable).

The engine's state (each key's rolling baseline, each conversation's recent turns) is
per key, so it lives with that key's windows in one partition of the event topic and goes
to the same changelog (``changes`` / ``restore``).
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from agents.windows import SENTIMENT_VALUE
from streams.records import Alert, WindowEvent, WindowStats


@dataclass(slots=True, frozen=True)
class AlertRules:
    """Thresholds of the three rules."""

    baseline_windows: int = 10  # rolling baseline length, in tumbling windows
    min_baseline_windows: int = 3
    volume_factor: float = 3.0  # count >= factor * baseline mean ...
    volume_min_count: int = 8  # ... and at least this many messages
    shift_z: float = 2.5  # |z| of the window's mean sentiment against the baseline
    shift_min_n: int = 5
    shift_std_floor: float = 0.25
    escalation_turns: int = 3  # consecutive negative or urgent turns


@dataclass(slots=True)
class Baseline:
    counts: deque[float]
    means: deque[float]
    last_start: int | None = None


@dataclass(slots=True)
class Conversation:
    recent: deque[tuple[str, bool]] = field(default_factory=lambda: deque(maxlen=10))
    fired_at: int = -1  # number of turns seen when the last alert fired
    turns: int = 0
    upto: int = -1  # the last event offset applied (replays are skipped)


def _alert_id(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


class AlertEngine:
    """Keeps per-key baselines; turns closed tumbling windows and chat turns into Alerts."""

    def __init__(self, rules: AlertRules, size_ms: int) -> None:
        self.rules = rules
        self.size_ms = size_ms
        self.baselines: dict[tuple[str, str], Baseline] = {}
        self.conversations: dict[str, Conversation] = {}
        self._dirty_baselines: set[tuple[str, str]] = set()
        self._dirty_conversations: set[str] = set()

    def on_window(self, w: WindowStats, now_ms: int) -> list[Alert]:
        """Evaluate volume spike and sentiment shift for one closed tumbling window."""
        if w.window != "tumbling" or w.dimension == "conversation":
            return []
        r = self.rules
        b = self.baselines.setdefault(
            (w.dimension, w.key),
            Baseline(deque(maxlen=r.baseline_windows), deque(maxlen=r.baseline_windows)),
        )
        if b.last_start is not None:
            gap = (w.start_ms - b.last_start) // self.size_ms - 1
            for _ in range(max(0, min(gap, r.baseline_windows))):
                b.counts.append(0.0)  # empty windows count as zero volume
        alerts: list[Alert] = []
        if len(b.counts) >= r.min_baseline_windows:
            base = sum(b.counts) / len(b.counts)
            if w.count >= r.volume_min_count and w.count >= r.volume_factor * max(base, 1.0):
                alerts.append(
                    self._alert(
                        "volume_spike",
                        w,
                        now_ms,
                        "warning",
                        f"{w.count} messages for {w.dimension} {w.key} in one window, "
                        f"{w.count / max(base, 1e-9):.1f}x its baseline of {base:.1f}",
                        {"count": w.count, "baseline_mean": round(base, 3)},
                    )
                )
        if (
            w.sentiment_mean is not None
            and w.sentiment_n >= r.shift_min_n
            and len(b.means) >= r.min_baseline_windows
        ):
            mean = sum(b.means) / len(b.means)
            std = max(math.sqrt(sum((m - mean) ** 2 for m in b.means) / len(b.means)), r.shift_std_floor)
            z = (w.sentiment_mean - mean) / std
            if abs(z) >= r.shift_z:
                direction = "negative" if z < 0 else "positive"
                alerts.append(
                    self._alert(
                        "sentiment_shift",
                        w,
                        now_ms,
                        "critical" if z < 0 else "info",
                        f"{direction} sentiment shift for {w.dimension} {w.key}: mean "
                        f"{w.sentiment_mean:+.2f} against a baseline of {mean:+.2f} (z={z:+.1f})",
                        {
                            "z": round(z, 3),
                            "mean": w.sentiment_mean,
                            "baseline_mean": round(mean, 4),
                            "baseline_std": round(std, 4),
                            "n": w.sentiment_n,
                        },
                    )
                )
        b.counts.append(float(w.count))
        if w.sentiment_mean is not None:
            b.means.append(w.sentiment_mean)
        b.last_start = w.start_ms
        self._dirty_baselines.add((w.dimension, w.key))
        return alerts

    def on_turn(self, ev: WindowEvent, offset: int, now_ms: int) -> list[Alert]:
        """Escalation: the last N turns of a conversation all negative or urgent."""
        if ev.dimension != "conversation":
            return []
        conv = self.conversations.setdefault(ev.key, Conversation())
        if offset <= conv.upto:
            return []  # replayed: already seen
        conv.upto = offset
        conv.turns += 1
        conv.recent.append((ev.message_id, ev.alarming))
        self._dirty_conversations.add(ev.key)
        n = self.rules.escalation_turns
        last = list(conv.recent)[-n:]
        if len(last) == n and all(flag for _, flag in last) and conv.turns - conv.fired_at >= n:
            conv.fired_at = conv.turns
            ids = [mid for mid, _ in last]
            return [
                Alert(
                    id=_alert_id("escalation", ev.key, ids[-1]),
                    rule="escalation",
                    dimension="conversation",
                    key=ev.key,
                    severity="critical",
                    message=f"conversation {ev.key} is escalating: {n} negative or urgent turns in a row",
                    figures={"turns": float(conv.turns), "consecutive": float(n)},
                    evidence=ids,
                    window_start_ms=ev.ts,
                    window_end_ms=ev.ts,
                    ts=now_ms,
                )
            ]
        return []

    def changes(self) -> list[tuple[str, dict[str, Any] | None]]:
        """Changelog entries for the state changed since the last call."""
        out: list[tuple[str, dict[str, Any] | None]] = []
        for dim, key in sorted(self._dirty_baselines):
            b = self.baselines[(dim, key)]
            out.append(
                (
                    f"b|{dim}|{key}",
                    {"counts": list(b.counts), "means": list(b.means), "last_start": b.last_start},
                )
            )
        for key in sorted(self._dirty_conversations):
            c = self.conversations[key]
            out.append(
                (
                    f"c|{key}",
                    {
                        "recent": [list(t) for t in c.recent],
                        "fired_at": c.fired_at,
                        "turns": c.turns,
                        "upto": c.upto,
                    },
                )
            )
        self._dirty_baselines.clear()
        self._dirty_conversations.clear()
        return out

    def restore(self, key: str, state: dict[str, Any] | None) -> bool:
        """Apply one changelog entry; False if it is not alert state."""
        n = self.rules.baseline_windows
        if key.startswith("b|"):
            _, dim, name = key.split("|", 2)
            if state is None:
                self.baselines.pop((dim, name), None)
            else:
                self.baselines[(dim, name)] = Baseline(
                    deque(state["counts"], maxlen=n), deque(state["means"], maxlen=n), state["last_start"]
                )
            return True
        if key.startswith("c|"):
            name = key[2:]
            if state is None:
                self.conversations.pop(name, None)
            else:
                self.conversations[name] = Conversation(
                    deque(((m, bool(f)) for m, f in state["recent"]), maxlen=10),
                    state["fired_at"],
                    state["turns"],
                    state["upto"],
                )
            return True
        return False

    def _alert(
        self,
        rule: str,
        w: WindowStats,
        now_ms: int,
        severity: str,
        message: str,
        figures: dict[str, float],
    ) -> Alert:
        return Alert(
            id=_alert_id(rule, w.dimension, w.key, w.start_ms),
            rule=rule,  # type: ignore[arg-type]
            dimension=w.dimension,
            key=w.key,
            severity=severity,  # type: ignore[arg-type]
            message=message,
            figures={k: float(v) for k, v in figures.items()},
            evidence=w.message_ids,
            window_start_ms=w.start_ms,
            window_end_ms=w.end_ms,
            ts=now_ms,
        )


__all__ = ["SENTIMENT_VALUE", "AlertEngine", "AlertRules"]

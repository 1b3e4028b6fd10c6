"""What the live dashboard shows, aggregated from the output topics (pure state, no I/O).

``DashboardState.add(kind, value, wall_ms)`` takes one decoded record of ``sf.results``,
``sf.alerts``, ``sf.windows`` or ``sf.stats``; ``snapshot(wall_ms, watch)`` returns the plain
JSON-ready dict the page renders. Everything is bounded: old rows, entities, conversations
and models fall out, so the dashboard runs for as long as the pipeline does.
"""

from __future__ import annotations

import heapq
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from agents.windows import entity_keys, is_chat_turn, message_sentiment
from streams.records import Alert, ModelLoad, Result, WindowStats

# Sentiment labels of every data set on one scale (financial tweets say bullish/bearish).
SENTIMENT_SCORE = {
    "positive": 1.0,
    "bullish": 1.0,
    "neutral": 0.0,
    "negative": -1.0,
    "bearish": -1.0,
}
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
KINDS = ("results", "alerts", "windows", "stats")


@dataclass(slots=True, frozen=True)
class DashboardConfig:
    """How much the dashboard keeps and shows."""

    results_shown: int = 40  # latest results on the page
    recent_results: int = 500  # results the allocation counts and the rate look at
    texts_kept: int = 5_000  # message texts kept to show alert evidence
    bucket_s: int = 10  # sentiment chart resolution (event time)
    rolling_s: int = 60  # each point: mean sentiment over this much event time up to it
    buckets_kept: int = 120  # per entity
    entities_kept: int = 2_000
    top_entities: int = 5
    alert_open_s: float = 900.0  # an alert stays open this long after it fired
    alerts_shown: int = 20
    conversations_kept: int = 2_000
    conversations_shown: int = 12
    turns_kept: int = 6
    risk_turns: int = 3  # at risk: >= risk_negative negative turns among the last risk_turns
    risk_negative: int = 2
    stats_stale_s: float = 10.0  # a model worker that has not reported this long is gone
    throughput_points: int = 300
    feeds_shown: int = 12
    text_chars: int = 280


def sentiment_score(label: str | None) -> float | None:
    return None if label is None else SENTIMENT_SCORE.get(label)


class _Bounded(OrderedDict):
    """An LRU-ordered dict that forgets its oldest entries past ``capacity``."""

    def __init__(self, capacity: int, on_evict: Any = None) -> None:
        super().__init__()
        self.capacity = capacity
        self.on_evict = on_evict

    def touch(self, key: Any, default_factory: Any) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = default_factory()
        while len(self) > self.capacity:
            old_key, old_value = self.popitem(last=False)
            if self.on_evict is not None:
                self.on_evict(old_key, old_value)
        return value


@dataclass(slots=True)
class _Conversation:
    key: str
    source: str
    turns: deque[dict[str, Any]]
    last_wall: int = 0
    escalated_at: int | None = None  # wall ms of the latest escalation alert
    escalation: str | None = None  # its message


class DashboardState:
    """Aggregates the four output topics into what the page shows."""

    def __init__(
        self, config: DashboardConfig | None = None, model_tasks: dict[str, str] | None = None
    ) -> None:
        self.config = c = config or DashboardConfig()
        self.model_tasks = dict(model_tasks or {})
        self.version = 0
        self.counts: Counter[str] = Counter()  # records seen per kind, and a few outcomes
        self.results: deque[dict[str, Any]] = deque(maxlen=c.results_shown)
        self.result_ids: _Bounded = _Bounded(c.texts_kept)  # id -> evidence summary
        self.arrivals: deque[int] = deque(maxlen=c.recent_results)  # wall ms per result
        self.allocations: deque[list[tuple[str, str, bool]]] = deque(maxlen=c.recent_results)
        self.chosen: Counter[tuple[str, str]] = Counter()  # (task, model) over allocations
        self.task_results: Counter[str] = Counter()
        self.degraded: Counter[str] = Counter()
        # entity -> {bucket start: [sentiment sum, n scored, mentions]}, and mentions per entity
        self.mentions: Counter[str] = Counter()
        self.series: _Bounded = _Bounded(c.entities_kept, lambda name, _: self.mentions.pop(name, None))
        self.alerts: _Bounded = _Bounded(500)  # alert id -> alert dict (+ received)
        self.conversations: _Bounded = _Bounded(c.conversations_kept)
        self.feeds: dict[str, dict[str, Any]] = {}  # source -> latest closed tumbling window
        self.loads: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.throughput: dict[str, deque[tuple[int, float]]] = {}
        self.invalid = 0

    # --- ingest ----------------------------------------------------------------------------
    def add(self, kind: str, value: Any, wall_ms: int) -> bool:
        """Take one record of ``kind``; False when it was a duplicate or not understood."""
        if not isinstance(value, dict):
            self.invalid += 1
            return False
        try:
            if kind == "results":
                changed = self._add_result(Result.model_validate(value), wall_ms)
            elif kind == "alerts":
                changed = self._add_alert(Alert.model_validate(value), wall_ms)
            elif kind == "windows":
                changed = self._add_window(WindowStats.model_validate(value))
            elif kind == "stats":
                changed = self._add_load(ModelLoad.model_validate(value), wall_ms)
            else:
                raise ValueError(f"unknown record kind {kind!r}")
        except ValidationError:
            self.invalid += 1
            return False
        if changed:
            self.counts[kind] += 1
            self.version += 1
        return changed

    def _add_result(self, r: Result, wall_ms: int) -> bool:
        if r.id in self.result_ids:
            return False  # redelivered: results are idempotent by id
        c = self.config
        sentiment = message_sentiment(r)
        summary = {
            "id": r.id,
            "text": _clip(r.text, c.text_chars),
            "sentiment": sentiment,
            "source": r.source,
            "key": r.key,
            "ts": r.ts,
        }
        self.result_ids.touch(r.id, lambda: summary)
        self.results.appendleft(self._row(r))
        self.arrivals.append(wall_ms)
        self.counts["partial"] += r.partial
        # which models the allocator chose, per task (a sliding window of recent results)
        chosen = [
            (task, m, bool(out.allocation.degraded))
            for task, out in r.outputs.items()
            if out.allocation is not None
            for m in out.allocation.models
        ]
        if len(self.allocations) == self.allocations.maxlen:
            self._forget_allocation(self.allocations[0])
        self.allocations.append(chosen)
        self._count_allocation(chosen, +1)
        # entity sentiment over event time
        ents = r.outputs.get("entities")
        per_entity = {e.key or e.text: e.sentiment for e in (ents.entities or [])} if ents else {}
        bucket = r.ts // 1000 // c.bucket_s * c.bucket_s
        for name in entity_keys(r):
            score = sentiment_score(per_entity.get(name) or sentiment)
            buckets = self.series.touch(name, dict)
            cell = buckets.setdefault(bucket, [0.0, 0, 0])  # sentiment sum, n scored, mentions
            cell[2] += 1
            self.mentions[name] += 1
            if score is not None:
                cell[0] += score
                cell[1] += 1
            if len(buckets) > c.buckets_kept:
                self.mentions[name] -= buckets.pop(min(buckets))[2]
        # conversation turns
        if is_chat_turn(r):
            conv = self.conversations.touch(
                r.key, lambda: _Conversation(r.key, r.source, deque(maxlen=c.turns_kept))
            )
            conv.source = r.source
            intent = r.outputs.get("intent")
            turn = (r.meta or {}).get("turn")
            new = {
                "id": r.id,
                "ts": r.ts,
                "turn": turn if isinstance(turn, int) else None,
                "text": _clip(r.text, c.text_chars),
                "sentiment": sentiment,
                "intent": intent.label if intent is not None else None,
            }
            # results arrive in any order (keyed by message id): keep the latest turns in order
            ordered = sorted([*conv.turns, new], key=lambda t: (t["ts"], t["turn"] or 0, t["id"]))
            conv.turns = deque(ordered[-c.turns_kept :], maxlen=c.turns_kept)
            conv.last_wall = wall_ms
        return True

    def _count_allocation(self, chosen: list[tuple[str, str, bool]], sign: int) -> None:
        for task in {t for t, _, _ in chosen}:
            self.task_results[task] += sign
            if any(d for t, _, d in chosen if t == task):
                self.degraded[task] += sign
        for task, model, _ in chosen:
            self.chosen[(task, model)] += sign

    def _forget_allocation(self, chosen: list[tuple[str, str, bool]]) -> None:
        self._count_allocation(chosen, -1)
        self.chosen += Counter()  # drop zero counts
        self.task_results += Counter()
        self.degraded += Counter()

    def _row(self, r: Result) -> dict[str, Any]:
        tasks = []
        for task, out in r.outputs.items():
            tasks.append(
                {
                    "task": task,
                    "label": out.label,
                    "score": _round(out.score),
                    "uncertain": out.uncertain,
                    "strategy": out.strategy,
                    "agreement": _round(out.agreement),
                    "entities": [
                        {"text": e.key or e.text, "type": e.type, "sentiment": e.sentiment}
                        for e in (out.entities or [])[:8]
                    ]
                    if out.entities is not None
                    else None,
                    "models": [
                        {
                            "model": m.model_id,
                            "weight": _round(m.weight),
                            "label": m.label,
                            "score": _round(m.score),
                            "error": m.error,
                        }
                        for m in out.models
                    ],
                    "missing": out.missing,
                }
            )
        return {
            "id": r.id,
            "ts": r.ts,
            "source": r.source,
            "key": r.key,
            "lang": r.lang,
            "text": _clip(r.text, self.config.text_chars),
            "tasks": tasks,
            "unserved": [u.task for u in r.unserved],
            "partial": r.partial,
            "missing": r.missing,
            "latency_ms": r.latency_ms.get("recognize_to_fuse"),
        }

    def _add_alert(self, a: Alert, wall_ms: int) -> bool:
        if a.id in self.alerts:
            return False
        alert = {**a.model_dump(mode="json"), "received_ms": wall_ms}
        self.alerts.touch(a.id, lambda: alert)
        if a.rule == "escalation" and a.dimension == "conversation":
            conv = self.conversations.touch(
                a.key,
                lambda: _Conversation(a.key, "", deque(maxlen=self.config.turns_kept)),
            )
            conv.escalated_at = a.ts
            conv.escalation = a.message
        return True

    def _add_window(self, w: WindowStats) -> bool:
        if w.dimension != "source" or w.window != "tumbling":
            return False  # the page shows each feed's latest closed tumbling window
        old = self.feeds.get(w.key)
        if old is not None and old["end_ms"] >= w.end_ms:
            return False
        self.feeds[w.key] = {
            "source": w.key,
            "start_ms": w.start_ms,
            "end_ms": w.end_ms,
            "count": w.count,
            "sentiment_mean": w.sentiment_mean,
            "sentiment_dist": w.sentiment_dist,
            "top_intents": [list(x) for x in w.top_intents[:3]],
            "top_entities": [list(x) for x in w.top_entities[:3]],
        }
        return True

    def _add_load(self, load: ModelLoad, wall_ms: int) -> bool:
        self.loads[(load.model_id, load.worker)] = (wall_ms, load.model_dump(mode="json"))
        total = sum(v["throughput"] for _, v in self._fresh(load.model_id, wall_ms))
        points = self.throughput.setdefault(load.model_id, deque(maxlen=self.config.throughput_points))
        second = wall_ms // 1000
        if points and points[-1][0] == second:
            points.pop()
        points.append((second, round(total, 2)))
        return True

    def _fresh(self, model: str, wall_ms: int) -> list[tuple[int, dict[str, Any]]]:
        stale_ms = self.config.stats_stale_s * 1000
        return [
            (seen, v) for (m, _), (seen, v) in self.loads.items() if m == model and wall_ms - seen <= stale_ms
        ]

    # --- views -----------------------------------------------------------------------------
    def top_entities(self) -> list[str]:
        """The most mentioned entities in the kept buckets (ties: by name)."""
        ranked = heapq.nsmallest(
            self.config.top_entities, self.mentions.items(), key=lambda kv: (-kv[1], kv[0])
        )
        return [name for name, _ in ranked]

    def find_entity(self, name: str | None) -> str | None:
        """The tracked entity a user typed (exact first, then case-insensitive)."""
        if not name or not name.strip():
            return None
        name = name.strip()
        if name in self.series:
            return name
        folded = name.casefold()
        return next((e for e in self.series if e.casefold() == folded), None)

    def entity_series(self, name: str) -> list[list[float | int | None]]:
        """[[bucket start (s), rolling mean sentiment or None, mentions in the bucket], ...]
        in time order; the mean covers the ``rolling_s`` of event time up to the bucket."""
        buckets = sorted(self.series.get(name, {}).items())
        out: list[list[float | int | None]] = []
        total, scored, first = 0.0, 0, 0
        for t, (s, n, mentions) in buckets:
            total, scored = total + s, scored + n
            while buckets[first][0] <= t - self.config.rolling_s:
                total -= buckets[first][1][0]
                scored -= buckets[first][1][1]
                first += 1
            out.append([t, round(total / scored, 4) if scored else None, mentions])
        return out

    def rate(self, wall_ms: int, span_ms: int = 10_000) -> float:
        """Results per second over the last ``span_ms``."""
        recent = sum(1 for t in self.arrivals if wall_ms - t <= span_ms)
        return round(recent / (span_ms / 1000), 2)

    def open_alerts(self, wall_ms: int) -> list[dict[str, Any]]:
        c = self.config
        open_ = [a for a in self.alerts.values() if wall_ms - a["ts"] <= c.alert_open_s * 1000]
        open_.sort(key=lambda a: (SEVERITY_RANK.get(a["severity"], 9), -a["ts"]))
        shown = []
        for a in open_[: c.alerts_shown]:
            evidence = [
                self.result_ids.get(mid) or {"id": mid, "text": None, "sentiment": None}
                for mid in a["evidence"][:10]
            ]
            shown.append({**a, "evidence_total": len(a["evidence"]), "evidence": evidence})
        return shown

    def at_risk(self, wall_ms: int) -> list[dict[str, Any]]:
        """Conversations with an open escalation alert or mostly negative recent turns."""
        c = self.config
        rows = []
        for conv in self.conversations.values():
            recent = list(conv.turns)[-c.risk_turns :]
            negative = sum(1 for t in recent if (sentiment_score(t["sentiment"]) or 0.0) < 0)
            escalated = conv.escalated_at is not None and wall_ms - conv.escalated_at <= c.alert_open_s * 1000
            if not escalated and negative < c.risk_negative:
                continue
            rows.append(
                {
                    "key": conv.key,
                    "source": conv.source,
                    "level": "escalating" if escalated else "at risk",
                    "negative": negative,
                    "of": len(recent),
                    "turns": list(conv.turns),
                    "escalation": conv.escalation if escalated else None,
                    "last_ms": max(conv.last_wall, conv.escalated_at or 0),
                }
            )
        rows.sort(key=lambda r: (r["level"] != "escalating", -r["negative"], -r["last_ms"]))
        return rows[: c.conversations_shown]

    def models(self, wall_ms: int) -> list[dict[str, Any]]:
        """One row per model that reported on sf.stats: live workers summed / averaged."""
        rows = []
        for model in sorted({m for m, _ in self.loads}):
            fresh = [v for _, v in self._fresh(model, wall_ms)]
            # a model with no live worker shows its last report, marked not live
            last = max((sv for (m, _), sv in self.loads.items() if m == model), key=lambda x: x[0])
            latest = fresh or [last[1]]
            tput = sum(v["throughput"] for v in latest)
            weights = [max(v["throughput"], 1e-9) for v in latest]
            wsum = sum(weights)

            def avg(field: str, vals=latest, ws=weights, total=wsum) -> float:
                return round(sum(v[field] * w for v, w in zip(vals, ws, strict=True)) / total, 2)

            rows.append(
                {
                    "model": model,
                    "task": self.model_tasks.get(model),
                    "workers": len(fresh),
                    "live": bool(fresh),
                    "throughput": round(tput, 2),
                    "batch_size": avg("batch_size"),
                    "per_item_ms": avg("per_item_ms"),
                    "batch_ms": avg("batch_ms"),
                    "lag": sum(v["lag"] for v in latest),
                    "errors": sum(v["errors"] for v in latest),
                }
            )
        return rows

    def allocation(self) -> list[dict[str, Any]]:
        """Per task: how often each model was chosen in the recent results."""
        out = []
        for task in sorted(self.task_results):
            total = self.task_results[task]
            if total <= 0:
                continue
            models = sorted(
                ((m, n) for (t, m), n in self.chosen.items() if t == task and n > 0),
                key=lambda mn: (-mn[1], mn[0]),
            )
            out.append(
                {
                    "task": task,
                    "results": total,
                    "degraded": self.degraded[task],
                    "models": [{"model": m, "count": n, "share": round(n / total, 4)} for m, n in models],
                }
            )
        return out

    def snapshot(self, wall_ms: int, watch: str | None = None) -> dict[str, Any]:
        """Everything the page shows, as plain JSON-ready data."""
        entities = self.top_entities()
        watched = self.find_entity(watch)
        shown = [*entities, *([watched] if watched and watched not in entities else [])]
        alerts = self.open_alerts(wall_ms)
        conversations = self.at_risk(wall_ms)
        models = self.models(wall_ms)
        return {
            "now": wall_ms,
            "version": self.version,
            "totals": {
                "results": self.counts["results"],
                "partial": self.counts["partial"],
                "rate": self.rate(wall_ms),
                "alerts": self.counts["alerts"],
                "alerts_open": len(alerts),
                "at_risk": len(conversations),
                "models_live": sum(1 for m in models if m["live"]),
                "models": len(models),
            },
            "results": list(self.results),
            "sentiment": {
                "bucket_s": self.config.bucket_s,
                "rolling_s": self.config.rolling_s,
                "entities": shown,
                "watch": watch.strip() if watch and watch.strip() else None,
                "watch_found": watched,
                "series": {name: self.entity_series(name) for name in shown},
            },
            "alerts": alerts,
            "conversations": conversations,
            "feeds": sorted(self.feeds.values(), key=lambda f: (-f["count"], f["source"]))[
                : self.config.feeds_shown
            ],
            "models": models,
            "throughput": {m: [list(p) for p in pts] for m, pts in self.throughput.items()},
            "allocation": self.allocation(),
        }


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)

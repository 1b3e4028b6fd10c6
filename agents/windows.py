"""Event-time windows over Results (pure state): tumbling and hopping, per source,
entity and conversation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from streams.records import Result, WindowStats

SENTIMENT_VALUE = {"positive": 1.0, "neutral": 0.0, "negative": -1.0}
MAX_IDS = 100
Offset = tuple[str, int, int]
WindowKey = tuple[str, str, str, int]  # dimension, key, kind, start_ms


@dataclass(slots=True)
class Window:
    dimension: str
    key: str
    kind: str
    start_ms: int
    end_ms: int
    count: int = 0
    sentiment_sum: float = 0.0
    sentiment_n: int = 0
    sentiment_dist: Counter[str] = field(default_factory=Counter)
    intents: Counter[str] = field(default_factory=Counter)
    entities: Counter[str] = field(default_factory=Counter)
    message_ids: list[str] = field(default_factory=list)
    offsets: list[Offset] = field(default_factory=list)

    def add(self, r: Result, sentiment: str | None, where: Offset | None) -> None:
        self.count += 1
        if sentiment is not None:
            self.sentiment_dist[sentiment] += 1
            if sentiment in SENTIMENT_VALUE:
                self.sentiment_sum += SENTIMENT_VALUE[sentiment]
                self.sentiment_n += 1
        intent = r.outputs.get("intent")
        if intent is not None and intent.label and not intent.uncertain:
            self.intents[intent.label] += 1
        for name in entity_keys(r):
            self.entities[name] += 1
        if len(self.message_ids) < MAX_IDS:
            self.message_ids.append(r.id)
        if where is not None:
            self.offsets.append(where)

    def stats(self, now_ms: int) -> WindowStats:
        return WindowStats(
            dimension=self.dimension,  # type: ignore[arg-type]
            key=self.key,
            window=self.kind,  # type: ignore[arg-type]
            start_ms=self.start_ms,
            end_ms=self.end_ms,
            count=self.count,
            sentiment_mean=round(self.sentiment_sum / self.sentiment_n, 4) if self.sentiment_n else None,
            sentiment_n=self.sentiment_n,
            sentiment_dist=dict(self.sentiment_dist),
            top_intents=self.intents.most_common(5),
            top_entities=self.entities.most_common(5),
            message_ids=self.message_ids,
            ts=now_ms,
        )


def message_sentiment(r: Result) -> str | None:
    """The message's fused sentiment label (financial first), unless uncertain."""
    for task in ("fin_sentiment", "sentiment"):
        out = r.outputs.get(task)
        if out is not None and out.label and not out.uncertain:
            return out.label
    return None


def entity_keys(r: Result) -> list[str]:
    ents = r.outputs.get("entities")
    if ents is None or not ents.entities:
        return []
    return list(dict.fromkeys((e.key or e.text) for e in ents.entities))


def dimensions(r: Result) -> Iterator[tuple[str, str]]:
    """(dimension, key) pairs a result counts in."""
    yield "source", r.source
    for name in entity_keys(r):
        yield "entity", name
    if is_chat_turn(r):
        yield "conversation", r.key  # type: ignore[misc]


def is_chat_turn(r: Result) -> bool:
    """A turn of a conversation: a chat source (or a ``meta.turn``) and a conversation key."""
    return bool(r.key) and ("chat" in r.source or "turn" in (r.meta or {}))


def window_starts(ts: int, size_ms: int, hop_ms: int) -> Iterator[tuple[str, int]]:
    """(kind, start) of every window containing ``ts``."""
    yield "tumbling", ts - ts % size_ms
    if 0 < hop_ms < size_ms:
        first = ts - ts % hop_ms - size_ms + hop_ms
        for start in range(first, ts + 1, hop_ms):
            if start <= ts < start + size_ms:
                yield "hopping", start


@dataclass(slots=True)
class Closed:
    window: Window
    stats: WindowStats


class WindowStore:
    """Open windows; closes those the watermark has passed."""

    def __init__(self, size_s: int, hop_s: int, grace_s: int) -> None:
        self.size_ms = size_s * 1000
        self.hop_ms = hop_s * 1000
        self.grace_ms = grace_s * 1000
        self.open: dict[WindowKey, Window] = {}
        # Newest event time per input partition: results of different partitions arrive
        # out of order, so the watermark follows the slowest partition (as Flink does).
        self.max_ts_by_part: dict[int, int] = {}
        self.wall_by_part: dict[int, int] = {}
        self.idle_timeout_ms = max(self.grace_ms, 2_000)
        self.last_event_wall_ms: int | None = None
        self.late = 0

    def watermark(self, wall_ms: int) -> int | None:
        """Event time up to which windows are complete: the slowest partition's newest event
        minus the grace, advanced by wall-clock idle time so the last windows close when the
        feed stops."""
        if not self.max_ts_by_part or self.last_event_wall_ms is None:
            return None
        # A partition quiet for a while does not hold the others back (Flink's idleness).
        active = [
            ts
            for part, ts in self.max_ts_by_part.items()
            if wall_ms - self.wall_by_part.get(part, 0) <= self.idle_timeout_ms
        ]
        if active:
            return min(active) - self.grace_ms
        idle = max(0, wall_ms - self.last_event_wall_ms)
        return max(self.max_ts_by_part.values()) - self.grace_ms + idle

    @property
    def max_ts(self) -> int | None:
        return max(self.max_ts_by_part.values(), default=None)

    def add(self, r: Result, wall_ms: int, where: Offset | None = None) -> int:
        """Add a result to its windows; returns how many windows took it (0 = too late)."""
        wm = self.watermark(wall_ms)
        part = where[1] if where is not None else 0
        self.max_ts_by_part[part] = max(self.max_ts_by_part.get(part, r.ts), r.ts)
        self.wall_by_part[part] = wall_ms
        self.last_event_wall_ms = wall_ms
        sentiment = message_sentiment(r)
        taken = 0
        for dim, key in dimensions(r):
            for kind, start in window_starts(r.ts, self.size_ms, self.hop_ms):
                end = start + self.size_ms
                if wm is not None and end <= wm:
                    continue  # that window already closed
                wkey = (dim, key, kind, start)
                win = self.open.get(wkey)
                if win is None:
                    win = self.open[wkey] = Window(dim, key, kind, start, end)
                win.add(r, sentiment, where)
                taken += 1
        if taken == 0:
            self.late += 1
        return taken

    def close_due(self, wall_ms: int) -> list[Closed]:
        """Close and return the windows whose end the watermark passed."""
        wm = self.watermark(wall_ms)
        if wm is None:
            return []
        due = [k for k, w in self.open.items() if w.end_ms <= wm]
        return [
            Closed(w, w.stats(wall_ms)) for w in (self.open.pop(k) for k in sorted(due, key=lambda k: k[3]))
        ]

"""Event-time windows (pure state): tumbling and hopping, per source, entity and conversation.

monitor first routes every Result to one WindowEvent per (dimension, key) it counts in
(``events_of``), keyed so that all windows of a key live in one partition of
``sf.monitor.events``. A ``WindowTable`` holds one such partition's open windows. Its state
is a table with a changelog: ``changes()`` gives the entries to write after a batch and
``restore()`` rebuilds the table from them, so any worker can take the partition over.

Each window remembers the last event offset it applied, so a batch replayed after a crash
(at-least-once: state written, offsets not yet committed) is not counted twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from streams.records import Result, WindowEvent, WindowStats

SENTIMENT_VALUE = {"positive": 1.0, "neutral": 0.0, "negative": -1.0}
MAX_IDS = 100
WindowKey = tuple[str, str, str, int]  # dimension, key, kind, start_ms


# --- routing: Result -> WindowEvents --------------------------------------------------------
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


def is_urgent(r: Result) -> bool:
    """An urgent turn: the urgency output says so, or the text shouts."""
    out = r.outputs.get("urgency")
    if out is not None and out.label == "urgent":
        return True
    letters = [c for c in r.text if c.isalpha()]
    shouting = len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.6
    return shouting or r.text.count("!") >= 3


def events_of(r: Result, src_partition: int = 0) -> list[WindowEvent]:
    """One WindowEvent per (dimension, key) the result counts in."""
    sentiment = message_sentiment(r)
    intent = r.outputs.get("intent")
    intent_label = intent.label if intent is not None and intent.label and not intent.uncertain else None
    entities = entity_keys(r)
    alarming = is_chat_turn(r) and (sentiment == "negative" or is_urgent(r))
    return [
        WindowEvent(
            dimension=dim,  # type: ignore[arg-type]
            key=key,
            message_id=r.id,
            ts=r.ts,
            sentiment=sentiment,
            intent=intent_label,
            entities=entities,
            alarming=alarming and dim == "conversation",
            src_partition=src_partition,
        )
        for dim, key in dimensions(r)
    ]


def event_key(ev: WindowEvent) -> str:
    """The partitioning key of an event: every window of one key in one partition."""
    return f"{ev.dimension}:{ev.key}"


def window_starts(ts: int, size_ms: int, hop_ms: int) -> Iterator[tuple[str, int]]:
    """(kind, start) of every window containing ``ts``."""
    yield "tumbling", ts - ts % size_ms
    if 0 < hop_ms < size_ms:
        first = ts - ts % hop_ms - size_ms + hop_ms
        for start in range(first, ts + 1, hop_ms):
            if start <= ts < start + size_ms:
                yield "hopping", start


# --- one window -------------------------------------------------------------------------------
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
    upto: int = -1  # the last event offset applied (replays at or below it are skipped)

    def add(self, ev: WindowEvent, offset: int) -> None:
        self.count += 1
        if ev.sentiment is not None:
            self.sentiment_dist[ev.sentiment] += 1
            if ev.sentiment in SENTIMENT_VALUE:
                self.sentiment_sum += SENTIMENT_VALUE[ev.sentiment]
                self.sentiment_n += 1
        if ev.intent:
            self.intents[ev.intent] += 1
        for name in ev.entities:
            self.entities[name] += 1
        if len(self.message_ids) < MAX_IDS:
            self.message_ids.append(ev.message_id)
        self.upto = max(self.upto, offset)

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

    def to_state(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "key": self.key,
            "kind": self.kind,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "count": self.count,
            "sentiment_sum": self.sentiment_sum,
            "sentiment_n": self.sentiment_n,
            "sentiment_dist": dict(self.sentiment_dist),
            "intents": dict(self.intents),
            "entities": dict(self.entities),
            "message_ids": self.message_ids,
            "upto": self.upto,
        }

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Window:
        return cls(
            dimension=d["dimension"],
            key=d["key"],
            kind=d["kind"],
            start_ms=d["start_ms"],
            end_ms=d["end_ms"],
            count=d["count"],
            sentiment_sum=d["sentiment_sum"],
            sentiment_n=d["sentiment_n"],
            sentiment_dist=Counter(d["sentiment_dist"]),
            intents=Counter(d["intents"]),
            entities=Counter(d["entities"]),
            message_ids=list(d["message_ids"]),
            upto=d["upto"],
        )


def window_state_key(k: WindowKey) -> str:
    dim, key, kind, start = k
    return f"w|{kind}|{start}|{dim}|{key}"


@dataclass(slots=True)
class Closed:
    window: Window
    stats: WindowStats


# --- one partition's table ------------------------------------------------------------------
class WindowTable:
    """The open windows of one partition of the event topic, and its event time.

    Events of one key arrive from every sf.results partition, each in its own time order,
    so the watermark follows the slowest source partition that is still active (Flink's
    per-channel watermark, with its idleness rule): a source partition quiet for
    ``idle_timeout_ms`` stops holding it back, and once all are quiet it advances with the
    wall clock, so the last windows close when a feed stops. Events behind the watermark
    are late: counted, not added.

    As in Flink, a channel that has sent nothing yet holds the watermark at its minimum:
    until each of the ``source_partitions`` has been seen, or has idled out (no event from
    it for ``idle_timeout_ms`` since the table's event time started or was restored), there
    is no watermark. Otherwise the first event of a partition not seen yet, older than the
    others, would be late. The watermark never falls back below the end of a window
    already closed (``closed_upto``, kept in the changelog), so a hold after a restore
    never reopens a window that was published.
    """

    META = "meta"

    def __init__(self, size_s: int, hop_s: int, grace_s: int, source_partitions: int = 1) -> None:
        self.size_ms = size_s * 1000
        self.hop_ms = hop_s * 1000
        self.grace_ms = grace_s * 1000
        self.idle_timeout_ms = max(self.grace_ms, 2_000)
        self.source_partitions = source_partitions  # of sf.results (0..n-1)
        self.open: dict[WindowKey, Window] = {}
        self.max_ts_by_part: dict[int, int] = {}  # its keys: the source partitions seen
        self.wall_by_part: dict[int, int] = {}
        self.last_event_wall_ms: int | None = None
        # When the idle clock of a partition not seen yet starts: the first event, or a
        # restore (a table may exist long before its first event; counting from then would
        # idle every partition out before the feed begins).
        self.started_wall_ms: int | None = None
        self.closed_upto: int | None = None  # the latest end of a window closed
        self.late = 0
        self._dirty: set[WindowKey] = set()
        self._closed: set[WindowKey] = set()
        self._meta_dirty = False

    @property
    def max_ts(self) -> int | None:
        return max(self.max_ts_by_part.values(), default=None)

    def unseen_pending(self, wall_ms: int) -> bool:
        """Whether a source partition not seen yet still holds the watermark back (it has
        not idled out since the table's event time started)."""
        if self.started_wall_ms is None or wall_ms - self.started_wall_ms > self.idle_timeout_ms:
            return False
        return any(p not in self.max_ts_by_part for p in range(self.source_partitions))

    def watermark(self, wall_ms: int) -> int | None:
        """Event time up to which this partition's windows are complete."""
        wm = self._source_watermark(wall_ms)
        if wm is None or self.closed_upto is None:
            return wm if wm is not None else self.closed_upto
        return max(wm, self.closed_upto)

    def _source_watermark(self, wall_ms: int) -> int | None:
        """The watermark from the source partitions alone (may fall back, e.g. when an idle
        partition becomes active again)."""
        if not self.max_ts_by_part or self.last_event_wall_ms is None or self.unseen_pending(wall_ms):
            return None
        active = [
            ts
            for part, ts in self.max_ts_by_part.items()
            if wall_ms - self.wall_by_part.get(part, 0) <= self.idle_timeout_ms
        ]
        if active:
            return min(active) - self.grace_ms
        idle = max(0, wall_ms - self.last_event_wall_ms)
        return max(self.max_ts_by_part.values()) - self.grace_ms + idle

    def add(self, ev: WindowEvent, offset: int, wall_ms: int) -> int:
        """Add an event to its windows; returns how many windows took it (0 = late, or a
        replay of an event already applied)."""
        wm = self.watermark(wall_ms)
        part = ev.src_partition
        self.max_ts_by_part[part] = max(self.max_ts_by_part.get(part, ev.ts), ev.ts)
        self.wall_by_part[part] = wall_ms
        self.last_event_wall_ms = wall_ms
        if self.started_wall_ms is None:
            self.started_wall_ms = wall_ms
        self._meta_dirty = True
        taken = 0
        behind = 0
        for kind, start in window_starts(ev.ts, self.size_ms, self.hop_ms):
            end = start + self.size_ms
            if wm is not None and end <= wm:
                behind += 1
                continue  # that window already closed
            wkey = (ev.dimension, ev.key, kind, start)
            win = self.open.get(wkey)
            if win is None:
                win = self.open[wkey] = Window(ev.dimension, ev.key, kind, start, end)
            elif offset <= win.upto:
                continue  # replayed: already counted
            win.add(ev, offset)
            self._dirty.add(wkey)
            taken += 1
        if taken == 0 and behind:
            self.late += 1
        return taken

    def close_due(self, wall_ms: int) -> list[Closed]:
        """Close and return the windows whose end the watermark passed."""
        wm = self.watermark(wall_ms)
        if wm is None:
            return []
        due = sorted((k for k, w in self.open.items() if w.end_ms <= wm), key=lambda k: k[3])
        out = []
        for k in due:
            w = self.open.pop(k)
            self._dirty.discard(k)
            self._closed.add(k)
            out.append(Closed(w, w.stats(wall_ms)))
        if out:
            end = max(c.window.end_ms for c in out)
            if self.closed_upto is None or end > self.closed_upto:
                self.closed_upto = end
                self._meta_dirty = True
        return out

    def changes(self) -> list[tuple[str, dict[str, Any] | None]]:
        """Changelog entries since the last call: (state key, state or None to delete).
        The partition's stream time goes first, then updates, then deletions, so that a
        prefix of them (a crash mid-write) never deletes a window the watermark does not
        cover."""
        out: list[tuple[str, dict[str, Any] | None]] = []
        if self._meta_dirty:
            parts = {str(p): ts for p, ts in self.max_ts_by_part.items()}  # JSON keys are strings
            meta = {"max_ts_by_part": parts, "late": self.late, "closed_upto": self.closed_upto}
            out.append((self.META, meta))
        out += [(window_state_key(k), self.open[k].to_state()) for k in sorted(self._dirty, key=str)]
        out += [(window_state_key(k), None) for k in sorted(self._closed, key=str)]
        self._dirty.clear()
        self._closed.clear()
        self._meta_dirty = False
        return out

    def restore(self, key: str, state: dict[str, Any] | None, wall_ms: int) -> bool:
        """Apply one changelog entry (the latest per key wins); False if not a window entry."""
        if key == self.META:
            if state is not None:
                # JSON keys are strings; every source partition counts as active again, and
                # those not seen before have the idleness timeout from now to show up
                self.max_ts_by_part = {int(p): ts for p, ts in state["max_ts_by_part"].items()}
                self.wall_by_part = dict.fromkeys(self.max_ts_by_part, wall_ms)
                self.late = int(state.get("late", 0))
                self.closed_upto = state.get("closed_upto")  # absent in older changelogs
                self.last_event_wall_ms = wall_ms
                self.started_wall_ms = wall_ms
            return True
        if not key.startswith("w|"):
            return False
        _, kind, start, dim, wkey = key.split("|", 4)
        k = (dim, wkey, kind, int(start))
        if state is None:
            self.open.pop(k, None)
        else:
            self.open[k] = Window.from_state(state)
        return True

"""Which offsets are safe to commit when records finish out of order.

Stateful stages (fuse, monitor) hold a record until everything it contributes to has been
published. A partition's committable offset is the lowest offset still held, or one past
the highest seen when nothing is held. On a crash the stage replays from there and rebuilds
its state; downstream dedupe by message id absorbs the repeats.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass(slots=True)
class PartitionOffsets:
    """Held offsets of one partition."""

    held: dict[int, int] = field(default_factory=dict)  # offset -> hold count
    next_offset: int | None = None  # one past the highest offset seen
    committed: int | None = None
    # held offsets as a min-heap (released ones leave lazily): thousands can be held
    low: list[int] = field(default_factory=list)

    def see(self, offset: int, hold: bool) -> None:
        if hold:
            count = self.held.get(offset, 0)
            if count == 0:
                heapq.heappush(self.low, offset)
            self.held[offset] = count + 1
        if self.next_offset is None or offset + 1 > self.next_offset:
            self.next_offset = offset + 1

    def release(self, offset: int) -> None:
        count = self.held.get(offset)
        if count is None:
            return
        if count <= 1:
            del self.held[offset]
        else:
            self.held[offset] = count - 1

    def committable(self) -> int | None:
        low, held = self.low, self.held
        while low and low[0] not in held:
            heapq.heappop(low)
        if low:
            return low[0]
        return self.next_offset


class OffsetTracker:
    """Held offsets per (topic, partition); the commit point of each."""

    def __init__(self) -> None:
        self._parts: dict[tuple[str, int], PartitionOffsets] = {}

    def see(self, topic: str, partition: int, offset: int, hold: bool = False) -> None:
        """Record that an offset was consumed; ``hold`` keeps it uncommitted until released."""
        self._parts.setdefault((topic, partition), PartitionOffsets()).see(offset, hold)

    def release(self, topic: str, partition: int, offset: int) -> None:
        """One hold on the offset is over."""
        part = self._parts.get((topic, partition))
        if part is not None:
            part.release(offset)

    def to_commit(self) -> dict[tuple[str, int], int]:
        """Offsets that moved forward since the last ``mark_committed``."""
        out: dict[tuple[str, int], int] = {}
        for tp, part in self._parts.items():
            point = part.committable()
            if point is not None and (part.committed is None or point > part.committed):
                out[tp] = point
        return out

    def mark_committed(self, commits: dict[tuple[str, int], int]) -> None:
        for tp, offset in commits.items():
            part = self._parts.get(tp)
            if part is not None:
                part.committed = offset

    def forget(self, topic: str, partition: int) -> None:
        """Drop a partition (revoked in a rebalance)."""
        self._parts.pop((topic, partition), None)

    def held_count(self) -> int:
        return sum(len(p.held) for p in self._parts.values())

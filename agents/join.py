"""The fuse join: Plans meet their Predictions; complete, expire, dedupe (pure state)."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field

from streams.records import Plan, Prediction

Offset = tuple[str, int, int]  # topic, partition, offset


@dataclass(slots=True)
class Pending:
    plan: Plan | None = None
    predictions: dict[tuple[str, str], Prediction] = field(default_factory=dict)
    offsets: list[Offset] = field(default_factory=list)
    first_seen_ms: int = 0
    failovers: set[tuple[str, str]] = field(default_factory=set)  # (task, model) added by fuse
    conflicts: list[Plan] = field(default_factory=list)  # other input records reusing the id
    planned: frozenset[tuple[str, str]] = frozenset()  # the plan's (task, model) pairs, once

    def expected(self) -> set[tuple[str, str]]:
        return set(self.planned) | self.failovers

    def complete(self) -> bool:
        if self.plan is None:
            return False
        have = self.predictions
        return all(k in have for k in self.planned) and all(k in have for k in self.failovers)


@dataclass(slots=True, frozen=True)
class Failover:
    """A subtask to send to another model because every model tried for the task failed."""

    message_id: str
    task: str
    model_id: str
    text: str
    deadline_ms: int


def plan_failovers(entry: Pending, alternatives: dict[str, list[str]], now_ms: int) -> list[Failover]:
    """For each task whose tried models all answered with errors, pick the next model.

    ``alternatives`` lists each task's models best first. Expired subtasks are not retried
    (their deadline has passed); a task with no untried model is left to fail, and the
    result then says so.
    """
    if entry.plan is None or now_ms >= entry.plan.deadline_ms:
        return []
    out: list[Failover] = []
    tried: dict[str, set[str]] = {}
    for task, model in entry.expected():
        tried.setdefault(task, set()).add(model)
    for task, models in tried.items():
        preds = [entry.predictions.get((task, m)) for m in models]
        if any(p is None or p.error is None for p in preds):
            continue  # still waiting, or some model served the task
        if any((p.error or "").startswith("expired") for p in preds if p is not None):
            continue
        nxt = next((m for m in alternatives.get(task, []) if m not in models), None)
        if nxt is not None:
            entry.failovers.add((task, nxt))
            out.append(Failover(entry.plan.message_id, task, nxt, entry.plan.text, entry.plan.deadline_ms))
    return out


@dataclass(slots=True)
class Done:
    """A join that is finished: emit a result (unless duplicate) and release its offsets."""

    message_id: str
    plan: Plan | None
    predictions: dict[tuple[str, str], Prediction]
    offsets: list[Offset]
    partial: bool
    duplicate: bool = False
    conflicts: list[Plan] = field(default_factory=list)


class Joiner:
    """Pending joins keyed by message id, plus a bounded memory of finished ids.

    ``collect`` looks only at the joins that changed since the last call and at those
    whose deadline or orphan time has come (two heaps), not at every pending join: with
    thousands in flight, a full scan per batch was half of the fuse stage's CPU.
    """

    def __init__(self, dedupe_capacity: int = 200_000, orphan_ttl_ms: int = 120_000) -> None:
        self.pending: dict[str, Pending] = {}
        self.done_ids: OrderedDict[str, str | None] = OrderedDict()  # id -> origin
        self.capacity = dedupe_capacity
        self.orphan_ttl_ms = orphan_ttl_ms
        self._touched: dict[str, None] = {}  # ids changed since the last collect, in order
        self._deadlines: list[tuple[int, str]] = []  # (plan deadline, id), a min-heap
        self._orphans: list[tuple[int, str]] = []  # (first seen + orphan ttl, id), a min-heap

    def _entry(self, message_id: str, now_ms: int, orphan_watch: bool = False) -> Pending:
        entry = self.pending.get(message_id)
        if entry is None:
            entry = self.pending[message_id] = Pending(first_seen_ms=now_ms)
            if orphan_watch:  # only a join begun by a prediction can lack its plan
                heapq.heappush(self._orphans, (now_ms + self.orphan_ttl_ms, message_id))
        self._touched[message_id] = None
        return entry

    def add_plan(self, plan: Plan, where: Offset, now_ms: int) -> None:
        entry = self._entry(plan.message_id, now_ms)
        done_origin = self.done_ids.get(plan.message_id)
        if entry.plan is None and not (done_origin and plan.origin and plan.origin != done_origin):
            entry.plan = plan
            entry.planned = frozenset(plan.expected())
            heapq.heappush(self._deadlines, (plan.deadline_ms, plan.message_id))
        elif _other_record(entry.plan, plan) or (done_origin and plan.origin != done_origin):
            entry.conflicts.append(plan)  # a different input record with the same id
        entry.offsets.append(where)

    def add_prediction(self, pred: Prediction, where: Offset, now_ms: int) -> None:
        entry = self._entry(pred.message_id, now_ms, orphan_watch=True)
        entry.predictions.setdefault((pred.task, pred.model_id), pred)
        entry.offsets.append(where)

    def is_done(self, message_id: str) -> bool:
        return message_id in self.done_ids

    def has_errors(self, message_id: str) -> bool:
        """True when a pending join holds an error prediction (a model failed its subtask)."""
        entry = self.pending.get(message_id)
        return entry is not None and any(p.error is not None for p in entry.predictions.values())

    def collect(self, now_ms: int) -> list[Done]:
        """Joins that completed, passed their deadline, or are orphaned duplicates."""
        due = self._touched
        self._touched = {}
        for heap in (self._deadlines, self._orphans):
            while heap and heap[0][0] <= now_ms:
                due[heapq.heappop(heap)[1]] = None
        out: list[Done] = []
        for mid in due:
            entry = self.pending.get(mid)
            if entry is None:
                continue  # finished or dropped since it was queued
            if mid in self.done_ids:
                # Redelivered plan or late prediction of a finished message: drop it.
                done = Done(mid, entry.plan, entry.predictions, entry.offsets, False, True)
            elif entry.complete():
                done = Done(mid, entry.plan, entry.predictions, entry.offsets, False)
            elif entry.plan is not None and now_ms >= entry.plan.deadline_ms:
                done = Done(mid, entry.plan, entry.predictions, entry.offsets, True)
            elif entry.plan is None and entry.conflicts:
                done = Done(mid, None, {}, entry.offsets, False, True)
            elif entry.plan is None and now_ms - entry.first_seen_ms >= self.orphan_ttl_ms:
                # Predictions whose plan never came (its message was already finished by
                # another worker before a rebalance): nothing to emit.
                done = Done(mid, None, entry.predictions, entry.offsets, False, True)
            else:
                continue
            done.conflicts = entry.conflicts
            out.append(done)
            del self.pending[mid]
            if not done.duplicate:
                self._remember(mid, entry.plan.origin if entry.plan else None)
        self._compact()
        return out

    def _compact(self) -> None:
        """Rebuild a heap once most of its entries belong to finished joins (they stay in
        it until their time comes otherwise; with long budgets that is every message)."""
        limit = 2 * len(self.pending) + 1024
        if len(self._deadlines) > limit:
            self._deadlines = [(e.plan.deadline_ms, m) for m, e in self.pending.items() if e.plan]
            heapq.heapify(self._deadlines)
        if len(self._orphans) > limit:
            self._orphans = [
                (e.first_seen_ms + self.orphan_ttl_ms, m) for m, e in self.pending.items() if e.plan is None
            ]
            heapq.heapify(self._orphans)

    def remember_all(self, finished: dict[str, str | None]) -> None:
        """Mark ids as finished (restored from the results topic after a rebalance)."""
        for mid, origin in finished.items():
            self._remember(mid, origin)
            if mid in self.pending:
                self._touched[mid] = None  # the next collect drops it as a duplicate

    def _remember(self, message_id: str, origin: str | None) -> None:
        self.done_ids[message_id] = origin
        if len(self.done_ids) > self.capacity:
            self.done_ids.popitem(last=False)

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget pending joins whose records came from revoked partitions."""
        for mid in list(self.pending):
            if any(p in partitions for _, p, _ in self.pending[mid].offsets):
                del self.pending[mid]


def _other_record(kept: Plan | None, plan: Plan) -> bool:
    """True when ``plan`` came from a different input record than the one kept."""
    return (
        kept is not None
        and plan.origin is not None
        and kept.origin is not None
        and kept.origin != plan.origin
    )

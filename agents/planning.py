"""Task identification, subtask division and model allocation: InputMessage -> Plan.

Pure apart from the domain classifier's batched predict call, which is deterministic.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agents.text import clean_text, detect_language, extract_features
from models.base import Adapter
from models.registry import Registry
from models.scoring import Load, allocate, follow_choice
from models.stacking import load_choice, load_stacker
from streams.records import InputMessage, Plan, Subtask, TaskPlan, Unserved
from streams.settings import Settings

# Which tasks a message of each domain needs (the subtask division).
DOMAIN_TASKS: dict[str, list[str]] = {
    "financial": ["fin_sentiment", "entities"],
    # chat turns: abuse is checked too (the support assist reads the toxicity result)
    "support": ["intent", "sentiment", "kb", "toxicity"],
    "general": ["sentiment", "entities"],
}
# Tasks a producer may ask for explicitly.
KNOWN_TASKS = frozenset(
    {"fin_sentiment", "sentiment", "intent", "clinc_intent", "entities", "kb", "toxicity", "urgency"}
)
# A task whose models cannot share a vote in a meaningful way uses span voting.
SPAN_TASKS = frozenset({"entities"})
_ID_NAMESPACE = uuid.UUID("5f1c0e7e-2b1f-4c59-9a55-7b1f6c3e2a10")


def derive_id(topic: str, partition: int, offset: int) -> str:
    """A stable id for a message that came without one: the same on every redelivery."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{topic}/{partition}/{offset}"))


@dataclass(slots=True)
class Planned:
    plan: Plan
    subtasks: list[Subtask]


class UnknownTask(ValueError):
    """The message asked for a task streamfuse does not offer."""


class Planner:
    """Builds Plans from validated messages, using the registry and live model load."""

    def __init__(self, registry: Registry, settings: Settings, domain_model: Adapter | None):
        self.registry = registry
        self.settings = settings
        self.domain_model = domain_model

    def budget_for(self, msg: InputMessage) -> int:
        """Latency budget: meta.budget_ms, else meta.priority, else the source's, else default."""
        meta = msg.meta or {}
        budget = meta.get("budget_ms")
        if isinstance(budget, int) and not isinstance(budget, bool) and 10 <= budget <= 600_000:
            return budget
        priority = meta.get("priority")
        if isinstance(priority, str) and priority in self.settings.priority_budget_ms:
            return self.settings.priority_budget_ms[priority]
        return self.settings.source_budget_ms.get(msg.source, self.settings.default_budget_ms)

    def plan_batch(
        self,
        messages: Sequence[tuple[InputMessage, str]],
        loads: Mapping[str, Load],
        now_ms: int,
    ) -> list[Planned]:
        """Plan a batch of (message, message id). Raises nothing for valid messages."""
        cleaned = [clean_text(m.text) for m, _ in messages]
        needs_domain = [i for i, (m, _) in enumerate(messages) if self._needs_classifier(m)]
        domains: dict[int, tuple[str, float]] = {}
        if self.domain_model is not None and needs_domain:
            outs = self.domain_model.predict([cleaned[i] for i in needs_domain])
            for i, out in zip(needs_domain, outs, strict=True):
                domains[i] = (out.label or "general", float(out.score))
        return [
            self._plan_one(msg, mid, cleaned[i], domains.get(i), loads, now_ms)
            for i, (msg, mid) in enumerate(messages)
        ]

    def _needs_classifier(self, msg: InputMessage) -> bool:
        return not msg.tasks and msg.source not in self.settings.source_tasks

    def _plan_one(
        self,
        msg: InputMessage,
        message_id: str,
        text: str,
        domain: tuple[str, float] | None,
        loads: Mapping[str, Load],
        now_ms: int,
    ) -> Planned:
        lang = detect_language(text)
        features = extract_features(text)
        if msg.tasks:
            tasks, task_source = list(dict.fromkeys(msg.tasks)), "explicit"
        elif msg.source in self.settings.source_tasks:
            tasks, task_source = list(self.settings.source_tasks[msg.source]), "source-default"
        else:
            label = domain[0] if domain else "general"
            tasks, task_source = (
                list(DOMAIN_TASKS.get(label, DOMAIN_TASKS["general"])),
                "classifier",
            )
        budget = self.budget_for(msg)
        deadline = now_ms + budget + self.settings.deadline_grace_ms
        task_plans: list[TaskPlan] = []
        unserved: list[Unserved] = []
        for task in tasks:
            candidates = self.registry.for_task(task)
            if not candidates:
                unserved.append(Unserved(task=task, reason=f"no model serves task {task!r}"))
                continue
            speaking = [
                s for s in candidates if lang.code == "und" or lang.code in s.languages or "*" in s.languages
            ]
            if not speaking:
                unserved.append(
                    Unserved(
                        task=task,
                        reason=f"language {lang.code!r} is not served by any {task} model "
                        f"(served: {', '.join(sorted({lg for s in candidates for lg in s.languages}))})",
                    )
                )
                continue
            everything = (msg.meta or {}).get("models") == "all"  # evaluation: run every model
            # Entity extractors complement each other (tickers vs PER/ORG/LOC/MISC): no margin.
            wide = everything or task in SPAN_TASKS
            alloc = allocate(
                task,
                speaking,
                budget,
                loads,
                len(speaking) if everything else self.settings.ensemble_max,
                margin=1.0 if wide else None,
            )
            assert alloc is not None
            requested = (msg.meta or {}).get("fusion")
            if not wide and requested is None:
                alloc = follow_choice(alloc, load_choice(task))
            task_plans.append(
                TaskPlan(
                    task=task,
                    models=alloc.models,
                    scores=alloc.scores,
                    weights=alloc.weights,
                    strategy=_strategy(task, alloc.models, requested),
                    reason=alloc.reason,
                    degraded=alloc.degraded,
                )
            )
        plan = Plan(
            message_id=message_id,
            text=text,
            source=msg.source,
            key=msg.key,
            ts=msg.ts if msg.ts is not None else now_ms,
            meta=msg.meta,
            lang=lang.code,
            lang_score=lang.score,
            domain=domain[0] if domain else None,
            domain_score=round(domain[1], 4) if domain else None,
            task_source=task_source,
            features=features,
            tasks=task_plans,
            unserved=unserved,
            budget_ms=budget,
            deadline_ms=deadline,
            stage_ts={"recognized": now_ms},
        )
        subtasks = [
            Subtask(
                message_id=message_id,
                task=tp.task,
                model_id=model_id,
                text=text,
                deadline_ms=deadline,
                created_ms=now_ms,
            )
            for tp in task_plans
            for model_id in tp.models
        ]
        return Planned(plan, subtasks)


def _strategy(task: str, models: Sequence[str], requested: object = None) -> str:
    """span voting for entities; the producer's ``meta.fusion`` (weighted_vote,
    majority_vote, stacking) when it applies; stacking when a meta-learner covers the
    chosen members, unless validation chose a weighted vote for the task; else a weighted
    soft vote (or the single model's answer)."""
    if task in SPAN_TASKS:
        return "span_vote"
    if len(models) == 1:
        return "single"
    if requested in ("weighted_vote", "majority_vote"):
        return str(requested)
    stacker = load_stacker(task)
    if stacker is None or not set(stacker.members) <= set(models):
        return "weighted_vote"
    choice = load_choice(task)
    if requested != "stacking" and choice is not None and choice.strategy == "weighted_vote":
        return "weighted_vote"
    return "stacking"


def check_tasks(tasks: Sequence[str] | None, served: Iterable[str] = ()) -> None:
    """Raise UnknownTask for a task name streamfuse neither offers nor has a model for."""
    known = KNOWN_TASKS | set(served)
    for task in tasks or ():
        if task not in known:
            raise UnknownTask(f"unknown task {task!r}; known tasks: {', '.join(sorted(known))}")

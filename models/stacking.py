"""Stacking, and the choice of a task's fusion strategy on validation data.

The stacker is a small meta-learner over the ensemble members' calibrated probabilities,
trained on the members' predictions for the *validation* split (never the test split),
saved as JSON + safetensors under ``models/artifacts/stack-<task>/``, applied by fuse with
plain numpy. The members are the ensemble the allocator picks for the task by default.

The same run chooses how the task is fused (:func:`choose_strategy`): the member the
allocator ranks first, alone; a weighted soft vote of the ensemble; or the stacker, whichever
is most accurate on the validation split (the stacker's figure by nested cross-validation, so
that choosing its C does not flatter it); on a tie, the one that runs fewer models. The
choice is saved beside the stacker, and the planner follows it: an ensemble that does not pay
is not run.

    python -m models.stacking fin_sentiment sentiment intent
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from models.artifacts_io import read_config, read_tensors, write_artifact
from models.fusion import Vote, weighted_vote
from models.registry import ARTIFACTS_DIR, Registry

TASKS = ("fin_sentiment", "sentiment", "intent")
# Models each strategy runs, for breaking ties: fewer is cheaper.
STRATEGY_RANK = {"single": 0, "weighted_vote": 1, "stacking": 2}
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
SEED = 42


@dataclass(frozen=True)
class Stacker:
    """A fitted meta-learner: softmax(features @ W.T + b) over ``labels``."""

    task: str
    members: tuple[str, ...]
    labels: tuple[str, ...]
    W: np.ndarray
    b: np.ndarray

    def features(self, probs_by_model: Mapping[str, Mapping[str, float]]) -> np.ndarray:
        return np.array(
            [probs_by_model[m].get(lab, 0.0) for m in self.members for lab in self.labels], dtype=np.float64
        )

    def predict(self, probs_by_model: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        """The fused distribution; every member's distribution must be present."""
        z = self.W @ self.features(probs_by_model) + self.b
        z = np.exp(z - z.max())
        p = z / z.sum()
        return {lab: round(float(v), 6) for lab, v in zip(self.labels, p, strict=True)}


@dataclass(frozen=True)
class FusionChoice:
    """How a task is fused, chosen on validation data for one ensemble (``members``)."""

    task: str
    strategy: str  # single | weighted_vote | stacking
    best: str  # the member the allocator ranks first: the one "single" runs
    members: tuple[str, ...]
    validation_accuracy: Mapping[str, float]

    @cached_property
    def single_note(self) -> str:
        """Why a plan cut to ``best`` runs no ensemble: built once per choice (load_choice
        caches the choice), not once per message."""
        acc = self.validation_accuracy
        others = max(v for k, v in acc.items() if k != "single")
        return (
            f"; ensemble not run: {self.best} alone {acc['single']:.3f} on validation, "
            f"the ensemble at best {others:.3f}"
        )


def choose_strategy(accuracy: Mapping[str, float]) -> str:
    """The most accurate strategy; on a tie (to 4 decimals), the one that runs fewer models."""
    return max(accuracy, key=lambda k: (round(accuracy[k], 4), -STRATEGY_RANK[k]))


def artifact_dir(task: str):
    return ARTIFACTS_DIR / f"stack-{task}"


@cache
def _config(task: str) -> dict | None:
    """The committed stacker artifact's config (model.json) of ``task``, or None."""
    d = artifact_dir(task)
    return read_config(d) if (d / "model.json").exists() else None


@cache
def load_stacker(task: str) -> Stacker | None:
    """The committed stacker of a task, or None."""
    cfg = _config(task)
    if cfg is None:
        return None
    t = read_tensors(artifact_dir(task))
    return Stacker(task, tuple(cfg["members"]), tuple(cfg["labels"]), t["W"], t["b"])


@cache
def load_choice(task: str) -> FusionChoice | None:
    """The fusion strategy chosen for ``task`` on validation data, or None (not chosen)."""
    cfg = _config(task)
    if cfg is None or "strategy" not in cfg:
        return None
    return FusionChoice(
        task, cfg["strategy"], cfg["best"], tuple(cfg["members"]), dict(cfg["validation_accuracy"])
    )


def default_ensemble(registry: Registry, task: str) -> tuple[list[str], dict[str, float]]:
    """The ensemble the allocator picks for ``task`` with no load and the default budget:
    its members, best first, and their fusion weights."""
    from models.scoring import allocate
    from streams.settings import Settings

    s = Settings()
    alloc = allocate(task, registry.for_task(task), s.default_budget_ms, {}, s.ensemble_max)
    return (list(alloc.models), dict(alloc.weights)) if alloc else ([], {})


def vote_accuracy(
    probs: Mapping[str, Sequence[Mapping[str, float]]], weights: Mapping[str, float], y: Sequence[str]
) -> float:
    """Accuracy of fuse's weighted soft vote over the members' distributions."""
    members = list(probs)
    hits = 0
    for i, label in enumerate(y):
        votes = [Vote(m, weights[m], None, None, dict(probs[m][i])) for m in members]
        hits += weighted_vote(votes).label == label
    return hits / len(y)


def train(task: str) -> dict[str, object]:
    """Fit the stacker of ``task`` on validation predictions; returns its report."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

    from models.adapters import build_adapter
    from models.recipes import RECIPES

    # Committed models only: the stacker is committed, and a fresh clone, which has no full
    # checkpoints (models.registry.local_artifacts_dir), must have every member it names.
    registry = Registry(s for s in Registry.load(include_test=False) if not s.requires_local)
    ranked, weights = default_ensemble(registry, task)
    members = sorted(ranked)
    if len(members) < 2:
        raise ValueError(f"{task}: the default ensemble has {len(members)} member(s); nothing to stack")
    val = RECIPES[members[0]].validation()
    labels = sorted(set(val.labels))
    probs, tops = {}, {}
    for m in members:
        if RECIPES[m].validation().texts != val.texts:
            raise ValueError(f"{task}: members do not share one validation split ({m})")
        outs = build_adapter(registry.get(m)).predict(val.texts)
        probs[m] = [o.probs or {} for o in outs]
        tops[m] = [o.label for o in outs]
    x = np.array(
        [[probs[m][i].get(lab, 0.0) for m in members for lab in labels] for i in range(len(val.texts))]
    )
    y = np.array(val.labels)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    with warnings.catch_warnings():
        # Banking77's validation split has intents with 2 or 3 texts, fewer than the 5 folds:
        # sklearn warns that some folds lack them, which only means those folds cannot score them.
        warnings.filterwarnings("ignore", "The least populated class in y has only", UserWarning)
        scores = {
            c: float(cross_val_score(LogisticRegression(C=c, max_iter=2000), x, y, cv=cv).mean())
            for c in C_GRID
        }
        best_c = max(scores, key=lambda c: (scores[c], -c))
        # Nested: the inner folds choose C, the outer ones score that choice on unseen items.
        inner = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED + 1)
        grid = GridSearchCV(LogisticRegression(max_iter=2000), {"C": list(C_GRID)}, cv=inner)
        nested = float(cross_val_score(grid, x, y, cv=cv).mean())
    best = ranked[0]
    accuracy = {
        "single": sum(t == label for t, label in zip(tops[best], y, strict=True)) / len(y),
        "weighted_vote": vote_accuracy(probs, weights, list(y)),
        "stacking": nested,
    }
    strategy = choose_strategy(accuracy)
    clf = LogisticRegression(C=best_c, max_iter=2000).fit(x, y)
    order = [list(clf.classes_).index(lab) for lab in labels]
    coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # binary: sklearn keeps one row; softmax over [0, z] is the same model
        coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
        intercept = np.array([0.0, intercept[0]])
    write_artifact(
        artifact_dir(task),
        {
            "task": task,
            "kind": "stacker",
            "members": members,
            "labels": labels,
            "C": best_c,
            "cv_accuracy": round(scores[best_c], 4),
            "cv_by_C": {str(c): round(v, 4) for c, v in scores.items()},
            "trained_on": f"validation split of {members[0]} ({len(y)} items)",
            "seed": SEED,
            "strategy": strategy,
            "best": best,
            "validation_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        },
        {"W": coef[order].astype(np.float64), "b": intercept[order].astype(np.float64)},
    )
    for loader in (_config, load_stacker, load_choice):
        loader.cache_clear()
    return {
        "task": task,
        "members": members,
        "C": best_c,
        "cv_accuracy": round(scores[best_c], 4),
        "validation_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        "strategy": strategy,
    }


def main(argv: Sequence[str]) -> None:
    """Train the stackers of the given tasks (default: all)."""
    for task in argv or TASKS:
        print(train(task))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Stacking: a small meta-learner over the ensemble members' calibrated probabilities.

Trained on the members' predictions for the *validation* split (never the test split),
saved as JSON + safetensors under ``models/artifacts/stack-<task>/``, applied by fuse with
plain numpy. The members are the ensemble the allocator picks for the task by default.

    python -m models.stacking fin_sentiment sentiment
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from models.artifacts_io import read_config, read_tensors, write_artifact
from models.registry import ARTIFACTS_DIR, Registry

TASKS = ("fin_sentiment", "sentiment")
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


def artifact_dir(task: str):
    return ARTIFACTS_DIR / f"stack-{task}"


@cache
def load_stacker(task: str) -> Stacker | None:
    """The committed stacker of a task, or None."""
    d = artifact_dir(task)
    if not (d / "model.json").exists():
        return None
    cfg = read_config(d)
    t = read_tensors(d)
    return Stacker(task, tuple(cfg["members"]), tuple(cfg["labels"]), t["W"], t["b"])


def default_members(registry: Registry, task: str) -> list[str]:
    """The ensemble the allocator picks for ``task`` with no load and the default budget."""
    from models.scoring import allocate
    from streams.settings import Settings

    s = Settings()
    alloc = allocate(task, registry.for_task(task), s.default_budget_ms, {}, s.ensemble_max)
    return sorted(alloc.models) if alloc else []


def train(task: str) -> dict[str, object]:
    """Fit the stacker of ``task`` on validation predictions; returns its report."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from models.adapters import build_adapter
    from models.recipes import RECIPES

    registry = Registry.load(include_test=False)
    members = default_members(registry, task)
    if len(members) < 2:
        raise ValueError(f"{task}: the default ensemble has {len(members)} member(s); nothing to stack")
    val = RECIPES[members[0]].validation()
    labels = sorted(set(val.labels))
    probs = {}
    for m in members:
        if RECIPES[m].validation().texts != val.texts:
            raise ValueError(f"{task}: members do not share one validation split ({m})")
        outs = build_adapter(registry.get(m)).predict(val.texts)
        probs[m] = [o.probs or {} for o in outs]
    x = np.array(
        [[probs[m][i].get(lab, 0.0) for m in members for lab in labels] for i in range(len(val.texts))]
    )
    y = np.array(val.labels)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    scores = {
        c: float(cross_val_score(LogisticRegression(C=c, max_iter=2000), x, y, cv=cv).mean()) for c in C_GRID
    }
    best_c = max(scores, key=lambda c: (scores[c], -c))
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
        },
        {"W": coef[order].astype(np.float64), "b": intercept[order].astype(np.float64)},
    )
    load_stacker.cache_clear()
    return {"task": task, "members": members, "C": best_c, "cv_accuracy": round(scores[best_c], 4)}


def main(argv: Sequence[str]) -> None:
    """Train the stackers of the given tasks (default: all)."""
    for task in argv or TASKS:
        print(train(task))


if __name__ == "__main__":
    main(sys.argv[1:])

"""The model catalog and the allocation score.

The catalog (``models/catalog.json``) lists every model: its task, adapter, artifact,
labels, backbone, cost, and the metrics and latencies that ``streamfuse eval`` measured.

Small artifacts are committed under ``models/artifacts``. Full checkpoints (a whole
fine-tuned encoder, about 90 MB) are too large to commit: their specs say
``requires_local`` and their artifacts live in the local artifact directory
(:func:`local_artifacts_dir`). The registry lists a model only when its artifact is present,
so a fresh clone has the committed models only, and a machine that trained a checkpoint
(``streamfuse train ID``) has it too (served, unless its spec says it is evaluation only).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

CATALOG_PATH = Path(__file__).with_name("catalog.json")
TEST_CATALOG_PATH = Path(__file__).with_name("catalog.test.json")
ARTIFACTS_DIR = Path(__file__).with_name("artifacts")
LOCAL_ARTIFACTS_ENV = "STREAMFUSE_LOCAL_ARTIFACTS"
# git-ignored, beside models/: where full checkpoints go unless the variable says otherwise
DEFAULT_LOCAL_ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts-local"


def local_artifacts_dir() -> Path:
    """Where full checkpoints live: ``$STREAMFUSE_LOCAL_ARTIFACTS``, else ``artifacts-local/``
    at the repository root (git-ignored)."""
    value = os.environ.get(LOCAL_ARTIFACTS_ENV)
    return Path(value).expanduser() if value else DEFAULT_LOCAL_ARTIFACTS


class ModelSpec(BaseModel):
    """One catalog entry."""

    model_config = ConfigDict(extra="forbid")

    id: str
    task: str
    kind: str  # lexicon | linear | head | finetuned | rules | test
    adapter: str  # key into models.adapters.ADAPTERS
    artifact: str | None = None  # path relative to models/artifacts (or absolute)
    labels: list[str] = Field(default_factory=list)
    backbone: str | None = None
    languages: list[str] = Field(default_factory=lambda: ["en"])
    cost: float = 1.0  # relative compute cost per item (1 = a lexicon lookup)
    device: str = "cpu"  # cpu | cuda-optional | cuda
    params: dict[str, Any] = Field(default_factory=dict)
    # measured by `streamfuse eval`
    metrics: dict[str, Any] = Field(default_factory=dict)
    latency_ms: dict[str, float] = Field(default_factory=dict)  # batch size -> ms per item
    requires_local: bool = False  # a full checkpoint, in local_artifacts_dir(), not committed
    test_only: bool = False
    # False: catalogued and evaluated, never allocated. For a model trained to a benchmark's
    # own protocol whose validation score does not compare with the task's other models
    # (lora-fin-allagree validates on AllAgree's clear-cut sentences), so ranking it by that
    # score would mislead the allocator.
    serving: bool = True
    _scoring_static: tuple[float, float] | None = PrivateAttr(default=None)  # see models.scoring

    def artifact_path(self) -> Path | None:
        """Absolute path of the artifact, or None for models without one. A relative path is
        under ``models/artifacts``, or under the local artifact directory for a spec that
        ``requires_local``."""
        if self.artifact is None:
            return None
        p = Path(self.artifact)
        return p if p.is_absolute() else (local_artifacts_dir() if self.requires_local else ARTIFACTS_DIR) / p

    def artifact_present(self) -> bool:
        """Whether the artifact is here (always, for models without one)."""
        path = self.artifact_path()
        return path is None or path.exists()

    @property
    def validation_score(self) -> float | None:
        """The score ``streamfuse eval`` measured on the validation split, if any (0..1)."""
        for key in ("val_macro_f1", "val_accuracy", "val_f1", "val_recall_at_3"):
            value = self.metrics.get(key)
            if isinstance(value, int | float):
                return float(value)
        return None

    @property
    def quality(self) -> float:
        """The validation score used for weighting and allocation (0..1); 0.5 without one.
        Never a test-split score: allocation tuned on test splits would flatter the catalog."""
        score = self.validation_score
        return 0.5 if score is None else score

    def latency_per_item(self, batch_size: int = 32) -> float:
        """Measured ms per item at the nearest measured batch size (1.0 if unmeasured)."""
        if not self.latency_ms:
            return 1.0
        sizes = sorted(int(k) for k in self.latency_ms)
        nearest = min(sizes, key=lambda s: abs(s - batch_size))
        return float(self.latency_ms[str(nearest)])


# Adapters whose models add a LoRA update to a packaged base that a backbone shares: their
# rows can join the backbone's batch and pass (models.shared_pass).
SHARES_BASE = {"minilm_lora": "minilm"}


def serving_group(spec: ModelSpec, *, coschedule: bool = True, share_base: bool = True) -> str | None:
    """The backbone whose topic and batches a model's subtasks join, or None (its own).

    Heads on a backbone join it when co-scheduling is on (one encoder pass for them all);
    LoRA models on that backbone's base join it too when ``share_base`` is on (one pass,
    each LoRA update applied to its own rows). Off, each model has its own topic and server.
    """
    if not coschedule:
        return None
    if spec.backbone:
        return spec.backbone
    if share_base:
        return SHARES_BASE.get(spec.adapter)
    return None


class Catalog(BaseModel):
    """The whole catalog file."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelSpec]


class Registry:
    """The models available to this process, by id and by task."""

    def __init__(self, specs: Iterable[ModelSpec], absent: Iterable[ModelSpec] = ()):
        self._specs = {s.id: s for s in specs}
        self._absent = {s.id: s for s in absent}  # catalogued, artifact missing (for errors)
        self._groups: dict[tuple[bool, bool], Mapping[str, str | None]] = {}

    @classmethod
    def load(
        cls,
        path: Path = CATALOG_PATH,
        include_test: bool | None = None,
        include_unserved: bool = False,
        include_absent: bool = False,
    ) -> Registry:
        """Read the catalog, keeping models whose artifacts are present.

        Test-only models (``catalog.test.json``) join when ``include_test`` is true, or,
        when it is None, when ``STREAMFUSE_TEST_MODELS=1``. Models that are not serving join
        only with ``include_unserved`` (evaluation and listing): workers never load them.
        ``include_absent`` (listing only) keeps models whose artifact is missing too, such as
        a full checkpoint not trained on this machine (``artifact_present`` tells them apart).
        """
        if include_test is None:
            include_test = os.environ.get("STREAMFUSE_TEST_MODELS") == "1"
        models = list(Catalog.model_validate(orjson.loads(path.read_bytes())).models)
        if include_test and TEST_CATALOG_PATH.exists():
            models += Catalog.model_validate(orjson.loads(TEST_CATALOG_PATH.read_bytes())).models
        wanted = [s for s in models if (include_test or not s.test_only) and (include_unserved or s.serving)]
        missing = set() if include_absent else {s.id for s in wanted if not s.artifact_present()}
        return cls((s for s in wanted if s.id not in missing), absent=(s for s in wanted if s.id in missing))

    def get(self, model_id: str) -> ModelSpec:
        try:
            return self._specs[model_id]
        except KeyError:
            absent = self._absent.get(model_id)
            if absent is not None:
                elsewhere = f", or point {LOCAL_ARTIFACTS_ENV} at a folder that has it"
                raise KeyError(
                    f"model {model_id!r} is catalogued but its artifact is not here "
                    f"({absent.artifact_path()}); train it with `streamfuse train {model_id}`"
                    + (elsewhere if absent.requires_local else "")
                ) from None
            raise KeyError(f"unknown model {model_id!r}; `streamfuse models` lists the known ones") from None

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._specs

    def __iter__(self):
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def for_task(self, task: str) -> list[ModelSpec]:
        """The models the allocator may choose for ``task`` (serving ones only)."""
        return [s for s in self._specs.values() if s.task == task and s.serving]

    def groups(self, *, coschedule: bool = True, share_base: bool = True) -> Mapping[str, str | None]:
        """Each model's serving group (:func:`serving_group`): where its subtasks go.

        Worked out once per pair of switches (recognize asks for every batch it routes) and
        read-only."""
        key = (coschedule, share_base)
        if key not in self._groups:
            self._groups[key] = MappingProxyType(
                {
                    s.id: serving_group(s, coschedule=coschedule, share_base=share_base)
                    for s in self._specs.values()
                }
            )
        return self._groups[key]

    @property
    def tasks(self) -> list[str]:
        return sorted({s.task for s in self._specs.values()})


def save_metrics(
    model_id: str,
    metrics: dict[str, Any] | None = None,
    latency_ms: dict[str, float] | None = None,
    path: Path = CATALOG_PATH,
) -> None:
    """Write measured metrics and latencies back into the catalog file."""
    raw = orjson.loads(path.read_bytes())
    for entry in raw["models"]:
        if entry["id"] == model_id:
            if metrics is not None:
                entry["metrics"] = metrics
            if latency_ms is not None:
                entry["latency_ms"] = latency_ms
            break
    else:
        raise KeyError(f"model {model_id!r} is not in {path}")
    path.write_bytes(orjson.dumps(raw, option=orjson.OPT_INDENT_2) + b"\n")

"""Cheap models computed inline by recognize: no subtask record, no model topic, no hop.

A lexicon, rule or linear model costs a few hundredths of a millisecond per text, yet as a
model server it costs a subtask record, a consumer's fetches and commits, and a prediction
published from another process. Models that run no torch and that the catalog measured at
or under ``inline_max_ms`` per item (batch 32) are predicted by recognize in the batch that
plans them, and their predictions go straight to the predictions topic. A failing model
gives error predictions, as in infer, and fusion goes on without it.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence

from agents.infer import error_predictions, run_models, to_predictions, uses_torch
from models.base import Adapter
from models.registry import ModelSpec, Registry
from streams import metrics
from streams.records import Prediction, Subtask

log = logging.getLogger(__name__)


def is_inline(spec: ModelSpec, max_ms: float) -> bool:
    """Whether recognize computes ``spec`` itself: no torch, a measured cost per item at
    batch 32 of at most ``max_ms`` (0 turns inlining off)."""
    cost = spec.latency_ms.get("32")
    return max_ms > 0 and not uses_torch(spec) and cost is not None and 0 < float(cost) <= max_ms


def inline_ids(registry: Registry, max_ms: float) -> frozenset[str]:
    """The ids of the models recognize computes itself (see :func:`is_inline`)."""
    return frozenset(s.id for s in registry if s.task != "domain" and is_inline(s, max_ms))


def predict_inline(
    subtasks: Sequence[Subtask], adapters: Mapping[str, Adapter], worker: str
) -> list[Prediction]:
    """Predictions for ``subtasks``, one batch per model; a model that raises gives error
    predictions for its batch."""
    by_model: dict[str, list[Subtask]] = defaultdict(list)
    for st in subtasks:
        by_model[st.model_id].append(st)
    preds: list[Prediction] = []
    for model_id, batch in by_model.items():
        started = int(time.time() * 1000)
        t0 = time.perf_counter()
        try:
            outputs = run_models([(model_id, st.text) for st in batch], {model_id: adapters[model_id]}, None)
            if len(outputs) != len(batch):
                raise RuntimeError(f"model returned {len(outputs)} outputs for {len(batch)} inputs")
        except Exception as exc:
            metrics.model_error(model_id, "error", len(batch))
            log.exception("inline model %s failed on a batch of %d", model_id, len(batch))
            preds += error_predictions(batch, f"model error: {type(exc).__name__}: {exc}", worker)
            continue
        elapsed = (time.perf_counter() - t0) * 1000
        metrics.model_batch(model_id, len(batch), elapsed / 1000)
        preds += to_predictions(batch, outputs, worker=worker, model_ms=elapsed, started_ms=started)
    return preds

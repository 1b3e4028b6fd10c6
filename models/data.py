"""Typed loaders for the data sets in ``$STREAMFUSE_DATA`` (default ``../shared/data``).

Every loader returns a :class:`Split` ``(texts, labels)`` for one named split with fixed,
reproducible splitting. Validation splits are always carved out of a data set's training
data, never out of its test data, so nothing is ever tuned on a test split.

Split rules (seed 42 everywhere, stratified by label):

- financial_phrasebank 50Agree: de-duplicated, 80/20 train/test; validation = 10% of
  the whole set carved from train (so 70/10/20).
- financial_phrasebank AllAgree: its own 80/20 split (validation carved the same way).
  AllAgree is a subset of 50Agree, so models trained on the 50Agree train split must be
  scored on ``fpb_allagree_heldout`` (AllAgree sentences inside the 50Agree test split).
- twitter_financial_news_sentiment: sent_train -> train/validation (90/10),
  sent_valid -> test.
- banking77: train.csv -> train/validation (90/10), test.csv -> test.
- clinc150 (data_full.json): its own train/val/test, with the ``oos`` examples included
  (the 5 training texts that also occur in val/test are dropped from train).
- sst2: train.tsv -> train/validation (5%, phrase-leak-free, see
  :func:`_sst2_phrase_safe_carve`), dev.tsv -> test.
- conll2003: train/valid/test as shipped (IOB2 tags).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal, NamedTuple

import orjson
from sklearn.model_selection import train_test_split

SEED = 42
SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "validation", "test")

FIN_LABELS = ["negative", "neutral", "positive"]
SST2_LABELS = ["negative", "positive"]
DOMAIN_LABELS = ["financial", "general", "support"]
TWITTER_LABELS = {"0": "negative", "1": "positive", "2": "neutral"}  # bearish/bullish/neutral

# The files each data set reads, for the hashes recorded in every artifact's metadata.
DATASET_FILES: dict[str, list[str]] = {
    "fpb50": ["financial_phrasebank/Sentences_50Agree.txt"],
    "fpb_allagree": ["financial_phrasebank/Sentences_AllAgree.txt"],
    "fpb_allagree_heldout": [
        "financial_phrasebank/Sentences_50Agree.txt",
        "financial_phrasebank/Sentences_AllAgree.txt",
    ],
    "fpb_agreement": [
        f"financial_phrasebank/Sentences_{n}.txt" for n in ("50Agree", "66Agree", "75Agree", "AllAgree")
    ],
    "twitter_fin": [
        "twitter_financial_news_sentiment/sent_train.csv",
        "twitter_financial_news_sentiment/sent_valid.csv",
    ],
    "banking77": ["banking77/train.csv", "banking77/test.csv"],
    "clinc150": ["clinc150/data_full.json"],
    "sst2": ["sst2/train.tsv", "sst2/dev.tsv"],
    "conll2003": ["conll2003/train.txt", "conll2003/valid.txt", "conll2003/test.txt"],
}


class Split(NamedTuple):
    """One split of a text-classification data set."""

    texts: list[str]
    labels: list[str]


class TokenSplit(NamedTuple):
    """One split of a token-classification data set (one list per sentence)."""

    tokens: list[list[str]]
    tags: list[list[str]]


def data_dir() -> Path:
    """The data root: ``$STREAMFUSE_DATA`` or the ``shared/data`` folder next to the repo."""
    env = os.environ.get("STREAMFUSE_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _path(rel: str) -> Path:
    path = data_dir() / rel
    if not path.exists():
        raise FileNotFoundError(f"data file {path} not found; set STREAMFUSE_DATA to the data folder")
    return path


@functools.cache
def _sha256(path: Path, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hashes(rel_paths: Iterable[str]) -> dict[str, str]:
    """sha256 of each data file (paths relative to the data root)."""
    out = {}
    for rel in sorted(set(rel_paths)):
        p = _path(rel)
        out[rel] = _sha256(p, p.stat().st_mtime_ns)
    return out


def dataset_hashes(*datasets: str) -> dict[str, str]:
    """sha256 of every file the named data sets (keys of ``DATASET_FILES``) read."""
    rels: list[str] = []
    for name in datasets:
        rels.extend(DATASET_FILES[name])
    return file_hashes(rels)


def _carve(texts: list[str], labels: list[str], size: float) -> tuple[Split, Split]:
    """Stratified, seeded split of (texts, labels) into (rest, held-out of ``size``)."""
    tr_x, ho_x, tr_y, ho_y = train_test_split(
        texts, labels, test_size=size, random_state=SEED, stratify=labels
    )
    return Split(list(tr_x), list(tr_y)), Split(list(ho_x), list(ho_y))


def _dedupe(pairs: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Drop repeated texts (first label wins) and texts seen with conflicting labels,
    so that no text can land in both a training and a test split."""
    first: dict[str, str] = {}
    conflicting: set[str] = set()
    for text, label in pairs:
        if text in first and first[text] != label:
            conflicting.add(text)
        first.setdefault(text, label)
    kept = [(t, lab) for t, lab in first.items() if t not in conflicting]
    return [t for t, _ in kept], [lab for _, lab in kept]


def _three_way(texts: list[str], labels: list[str], test: float, val: float) -> dict[str, Split]:
    """Train/validation/test from one pool: test first, then validation out of train."""
    rest, test_split = _carve(texts, labels, test)
    train, val_split = _carve(rest.texts, rest.labels, val / (1.0 - test))
    return {"train": train, "validation": val_split, "test": test_split}


def _check(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


# --- financial sentiment -------------------------------------------------------------


def _read_fpb(name: str) -> tuple[list[str], list[str]]:
    pairs = []
    with _path(f"financial_phrasebank/{name}").open(encoding="latin-1") as f:
        for line in f:
            line = line.strip()
            if line:
                text, label = line.rsplit("@", 1)
                pairs.append((text.strip(), label.strip()))
    return _dedupe(pairs)


def _where(split: Split, keep: Callable[[str], bool]) -> Split:
    """The items of ``split`` whose text ``keep`` accepts, in order."""
    pairs = [(t, y) for t, y in zip(split.texts, split.labels, strict=True) if keep(t)]
    return Split([t for t, _ in pairs], [y for _, y in pairs])


@functools.cache
def _fpb_splits(name: str) -> dict[str, Split]:
    return _three_way(*_read_fpb(name), test=0.2, val=0.1)


def fpb50(split: SplitName) -> Split:
    """Financial PhraseBank, Sentences_50Agree (all data), fixed 70/10/20 split."""
    _check(split)
    return _fpb_splits("Sentences_50Agree.txt")[split]


def fpb_allagree(split: SplitName) -> Split:
    """Financial PhraseBank, Sentences_AllAgree, its own fixed 70/10/20 split.

    Only for models trained on AllAgree; see :func:`fpb_allagree_heldout` otherwise.
    """
    _check(split)
    return _fpb_splits("Sentences_AllAgree.txt")[split]


def fpb_allagree_heldout() -> Split:
    """AllAgree sentences that are in the 50Agree *test* split: the leak-free AllAgree
    score for models trained on the 50Agree train split (AllAgree is a subset of 50Agree)."""
    allagree = set(_read_fpb("Sentences_AllAgree.txt")[0])
    return _where(fpb50("test"), lambda t: t in allagree)


# Each FPB sentence's annotator agreement: the strictest subset file that holds it.
_FPB_AGREEMENT = (
    ("Sentences_AllAgree.txt", 1.0),
    ("Sentences_75Agree.txt", 0.75),
    ("Sentences_66Agree.txt", 0.66),
    ("Sentences_50Agree.txt", 0.5),
)


@functools.cache
def fpb_agreement() -> dict[str, float]:
    """The share of annotators who agreed on each Financial PhraseBank sentence, as a
    lower bound: 1.0 for AllAgree, 0.75, 0.66, else 0.5 (the subset files nest)."""
    level: dict[str, float] = {}
    for name, share in _FPB_AGREEMENT:
        for text in _read_fpb(name)[0]:
            level.setdefault(text, share)
    return level


def fpb_allagree_clean(split: SplitName) -> Split:
    """AllAgree's own split without the sentences of the 50Agree *test* split.

    For models trained on AllAgree: with those sentences out of their training and
    validation data, they can also be scored on the 50Agree test split and run beside the
    50Agree models without a leak. The ``test`` split is AllAgree's own, unchanged.
    """
    _check(split)
    own = fpb_allagree(split)
    if split == "test":
        return own
    held = set(fpb50("test").texts)
    return _where(own, lambda t: t not in held)


@functools.cache
def _twitter_splits() -> dict[str, Split]:
    def read(name: str) -> tuple[list[str], list[str]]:
        path = _path(f"twitter_financial_news_sentiment/{name}")
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        return [r["text"] for r in rows], [TWITTER_LABELS[r["label"]] for r in rows]

    train, val = _carve(*read("sent_train.csv"), 0.1)
    return {"train": train, "validation": val, "test": Split(*read("sent_valid.csv"))}


def twitter_fin(split: SplitName) -> Split:
    """Twitter financial news sentiment; labels mapped to negative/neutral/positive."""
    _check(split)
    return _twitter_splits()[split]


# --- intents -------------------------------------------------------------------------


@functools.cache
def _banking77_splits() -> dict[str, Split]:
    def read(name: str) -> Split:
        with _path(f"banking77/{name}").open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        return Split([r["text"] for r in rows], [r["category"] for r in rows])

    train, val = _carve(*read("train.csv"), 0.1)
    return {"train": train, "validation": val, "test": read("test.csv")}


def banking77(split: SplitName) -> Split:
    """BANKING77 intents (77 category names)."""
    _check(split)
    return _banking77_splits()[split]


def banking77_labels() -> list[str]:
    """The 77 BANKING77 categories, in the data set's own order."""
    return list(orjson.loads(_path("banking77/categories.json").read_bytes()))


@functools.cache
def _clinc_raw() -> dict[str, list[list[str]]]:
    return orjson.loads(_path("clinc150/data_full.json").read_bytes())


def clinc150(split: SplitName, include_oos: bool = True) -> Split:
    """CLINC150 "full": 150 intents, plus the ``oos`` examples when ``include_oos``."""
    _check(split)
    raw = _clinc_raw()
    key = {"train": "train", "validation": "val", "test": "test"}[split]
    rows = raw[key] + (raw[f"oos_{key}"] if include_oos else [])
    if split == "train":
        # A handful of texts (5 upstream) occur in train and in val/test: drop them from
        # train so nothing scored was also trained on.
        held = {r[0] for k in ("val", "test", "oos_val", "oos_test") for r in raw[k]}
        rows = [r for r in rows if r[0] not in held]
    return Split([r[0] for r in rows], [r[1] for r in rows])


# --- general sentiment ---------------------------------------------------------------


@functools.cache
def _sst2_splits() -> dict[str, Split]:
    def read(name: str) -> tuple[list[str], list[str]]:
        with _path(f"sst2/{name}").open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        return _dedupe((r["sentence"].strip(), SST2_LABELS[int(r["label"])]) for r in rows)

    train, val = _sst2_phrase_safe_carve(*read("train.tsv"))
    return {"train": train, "validation": val, "test": Split(*read("dev.tsv"))}


def _sst2_phrase_safe_carve(
    texts: list[str], labels: list[str], size: float = 0.05, min_tokens: int = 8
) -> tuple[Split, Split]:
    """Carve a validation split out of SST-2 train without phrase leakage.

    SST-2's training set holds every sentence *and* its sub-phrases, so a plain random
    carve puts phrases in validation whose parent sentence (or large parts of it) stay in
    train: a TF-IDF model then scored 0.92 on such a validation split but 0.83 on the
    dev sentences. Here validation is a seeded sample of phrases of at least
    ``min_tokens`` tokens (closer to whole sentences, like the test split), and train
    loses every phrase that contains a validation phrase or is a sub-phrase of one with
    at least 4 tokens (shorter phrases such as "good" are generic and stay).
    """
    rng = random.Random(SEED)
    toks = [t.split() for t in texts]
    candidates = [i for i, tk in enumerate(toks) if len(tk) >= min_tokens]
    val_idx = set(rng.sample(candidates, round(size * len(texts))))
    val_texts = {" ".join(toks[i]) for i in val_idx}
    val_spans: set[str] = set()
    for i in val_idx:
        tk = toks[i]
        for a in range(len(tk)):
            for b in range(a + 4, len(tk) + 1):
                val_spans.add(" ".join(tk[a:b]))

    def leaks(tk: list[str]) -> bool:
        if len(tk) >= 4 and " ".join(tk) in val_spans:
            return True
        n = len(tk)
        return n >= min_tokens and any(
            " ".join(tk[a:b]) in val_texts
            for a in range(n - min_tokens + 1)
            for b in range(a + min_tokens, n + 1)
        )

    train_idx = [i for i in range(len(texts)) if i not in val_idx and not leaks(toks[i])]
    val_order = sorted(val_idx)
    return (
        Split([texts[i] for i in train_idx], [labels[i] for i in train_idx]),
        Split([texts[i] for i in val_order], [labels[i] for i in val_order]),
    )


def sst2(split: SplitName) -> Split:
    """SST-2 (GLUE); the GLUE dev set is the test split (GLUE test has no labels)."""
    _check(split)
    return _sst2_splits()[split]


# --- task / domain -------------------------------------------------------------------


def domain(split: SplitName, max_per_source: int | None = 12000) -> Split:
    """The task/domain data: ``financial`` (FPB 50Agree + twitter financial news),
    ``support`` (banking77 + CLINC150 in-scope) and ``general`` (SST-2).

    ``max_per_source`` caps each source by a seeded sample (SST-2 alone would otherwise
    outnumber the rest); test splits are never capped.
    """
    sources: list[tuple[str, Split]] = [
        ("financial", fpb50(split)),
        ("financial", twitter_fin(split)),
        ("support", banking77(split)),
        ("support", clinc150(split, include_oos=False)),
        ("general", sst2(split)),
    ]
    # A few short texts occur in one source's train split and another's test split
    # (e.g. SST-2 phrases in CLINC150 test): keep them out of train and validation.
    held_out = set(domain("test").texts) if split != "test" else set()
    texts: list[str] = []
    labels: list[str] = []
    for i, (label, data) in enumerate(sources):
        items = [t for t in data.texts if t not in held_out]
        if split != "test" and max_per_source and len(items) > max_per_source:
            items = random.Random(SEED + i).sample(items, max_per_source)
        texts.extend(items)
        labels.extend([label] * len(items))
    return Split(texts, labels)


DOMAIN_SOURCES = ["fpb50", "twitter_fin", "banking77", "clinc150", "sst2"]


# --- NER -----------------------------------------------------------------------------


def conll2003(split: SplitName) -> TokenSplit:
    """CoNLL-2003 English NER, IOB2 tags; ``validation`` is the shipped valid.txt."""
    _check(split)
    name = {"train": "train.txt", "validation": "valid.txt", "test": "test.txt"}[split]
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    cur_tok: list[str] = []
    cur_tag: list[str] = []
    with _path(f"conll2003/{name}").open(encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if cur_tok:
                    tokens.append(cur_tok)
                    tags.append(cur_tag)
                    cur_tok, cur_tag = [], []
                continue
            cur_tok.append(parts[0])
            cur_tag.append(parts[-1])
    if cur_tok:
        tokens.append(cur_tok)
        tags.append(cur_tag)
    return TokenSplit(tokens, tags)


# Loaders by name, for train/evaluate recipes.
LOADERS = {
    "fpb50": fpb50,
    "fpb_allagree": fpb_allagree,
    "twitter_fin": twitter_fin,
    "banking77": banking77,
    "clinc150": clinc150,
    "sst2": sst2,
    "domain": domain,
}


def subsample(data: Split, n: int, seed: int = SEED) -> Split:
    """A seeded random sample of ``n`` examples (all of them when ``n >= len``), in the
    original order so the result is stable across runs."""
    if n >= len(data.texts):
        return data
    keep = sorted(random.Random(seed).sample(range(len(data.texts)), n))
    return Split([data.texts[i] for i in keep], [data.labels[i] for i in keep])

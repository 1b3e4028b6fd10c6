"""Split determinism and hygiene: fixed splits, no text in both train and test."""

from __future__ import annotations

import pytest

from models import data

pytestmark = pytest.mark.skipif(
    not (data.data_dir() / "financial_phrasebank").exists(), reason="data sets not present"
)

CLASSIFICATION = ["fpb50", "fpb_allagree", "twitter_fin", "banking77", "sst2", "clinc150"]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_no_overlap_and_well_formed(name: str) -> None:
    load = data.LOADERS[name]
    splits = {s: load(s) for s in data.SPLITS}
    for split in splits.values():
        assert len(split.texts) == len(split.labels) > 0
        assert all(isinstance(t, str) for t in split.texts)
    train = set(splits["train"].texts)
    assert not train & set(splits["test"].texts)
    assert not train & set(splits["validation"].texts)
    assert not set(splits["validation"].texts) & set(splits["test"].texts)


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_splits_are_deterministic(name: str) -> None:
    load = data.LOADERS[name]
    first = load("train")
    data._fpb_splits.cache_clear()
    data._twitter_splits.cache_clear()
    data._banking77_splits.cache_clear()
    data._sst2_splits.cache_clear()
    assert load("train") == first


def test_fpb_split_sizes_and_labels() -> None:
    train, val, test = (data.fpb50(s) for s in data.SPLITS)
    total = len(train.texts) + len(val.texts) + len(test.texts)
    assert 4800 < total <= 4846
    assert abs(len(test.texts) / total - 0.2) < 0.01
    assert set(train.labels) == set(data.FIN_LABELS)


def test_allagree_heldout_is_inside_50agree_test() -> None:
    held = data.fpb_allagree_heldout()
    assert set(held.texts) <= set(data.fpb50("test").texts)
    assert not set(held.texts) & set(data.fpb50("train").texts)


def test_allagree_clean_leaves_out_the_50agree_test_sentences() -> None:
    held = set(data.fpb50("test").texts)
    for split in ("train", "validation"):
        clean, own = data.fpb_allagree_clean(split), data.fpb_allagree(split)
        assert not set(clean.texts) & held
        assert set(clean.texts) == set(own.texts) - held
        assert 0 < len(clean.texts) < len(own.texts)
    assert data.fpb_allagree_clean("test") == data.fpb_allagree("test")  # scored on its own split


def test_fpb_agreement_covers_every_sentence_at_its_strictest_level() -> None:
    level = data.fpb_agreement()
    assert set(level.values()) == {0.5, 0.66, 0.75, 1.0}
    assert set(data.fpb50("train").texts) <= set(level)
    allagree = data.fpb_allagree("train").texts
    assert all(level[t] == 1.0 for t in allagree)
    # a 50Agree-only sentence (in no stricter file) gets the loosest level
    names = ("66Agree", "75Agree", "AllAgree")
    stricter = {t for n in names for t in data._read_fpb(f"Sentences_{n}.txt")[0]}
    loose = [t for t in data.fpb50("train").texts if t not in stricter]
    assert loose and all(level[t] == 0.5 for t in loose)


def test_label_mappings() -> None:
    assert set(data.twitter_fin("test").labels) == {"negative", "neutral", "positive"}
    assert set(data.sst2("test").labels) == {"negative", "positive"}
    assert len(set(data.banking77("test").labels)) == 77
    assert "oos" in set(data.clinc150("test").labels)
    assert "oos" not in set(data.clinc150("train", include_oos=False).labels)


def test_domain_test_is_built_from_test_splits_only() -> None:
    test = data.domain("test")
    assert set(test.labels) == set(data.DOMAIN_LABELS)
    assert not set(test.texts) & set(data.domain("train").texts)


def test_conll_reader() -> None:
    sents = data.conll2003("validation")
    assert len(sents.tokens) == 3250
    assert all(len(t) == len(g) for t, g in zip(sents.tokens, sents.tags, strict=True))
    assert {tag.split("-")[0] for tags in sents.tags for tag in tags} <= {"O", "B", "I"}


def test_hashes_are_sha256() -> None:
    hashes = data.dataset_hashes("fpb50")
    (digest,) = hashes.values()
    assert len(digest) == 64


def test_data_dir_env(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("STREAMFUSE_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path

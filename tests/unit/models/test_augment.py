"""The augmentation operations: what each does, seeded reproducibility, labels kept."""

from __future__ import annotations

import random
import string

import pytest

from models.augment import (
    AugmentConfig,
    augment_split,
    augment_text,
    casing_noise,
    punctuation_noise,
    random_deletion,
    random_swap,
)
from models.augment_study import noisy_copy

SENTENCE = "the quarterly profit rose sharply on strong demand"
WORDS = SENTENCE.split(" ")


def test_deletion_drops_words_in_order_and_never_all() -> None:
    rng = random.Random(0)
    for _ in range(200):
        out = random_deletion(WORDS, 0.3, rng)
        assert out and len(out) <= len(WORDS)
        it = iter(WORDS)
        assert all(w in it for w in out)  # a subsequence: order is kept
    assert random_deletion(WORDS, 1.0, random.Random(1)) in [[w] for w in WORDS]
    assert random_deletion(WORDS, 0.0, random.Random(1)) == WORDS
    assert random_deletion([], 0.5, random.Random(1)) == []


def test_swap_is_a_permutation_with_at_most_two_moves_per_swap() -> None:
    out = random_swap(WORDS, 1, random.Random(3))
    assert sorted(out) == sorted(WORDS) and out != WORDS
    assert sum(a != b for a, b in zip(out, WORDS, strict=True)) == 2
    assert random_swap(["alone"], 3, random.Random(0)) == ["alone"]
    assert " ".join(WORDS) == SENTENCE  # the input is not mutated


def test_casing_noise_only_changes_case() -> None:
    text = "Apple beats estimates, shares UP 5%"
    seen = set()
    for seed in range(40):
        out = casing_noise(text, random.Random(seed))
        assert out.lower() == text.lower()
        seen.add(out)
    assert {text.lower(), text.upper(), text.title()} <= seen


def test_punctuation_noise_modes() -> None:
    text = "I can't log in. Why?"
    outs = {punctuation_noise(text, random.Random(s)) for s in range(60)}
    assert "I cant log in Why" in outs  # stripped
    assert "I cant log in. Why?" in outs  # apostrophes dropped
    repeated = [o for o in outs if o.endswith("??")]
    assert repeated and all(o.startswith("I can't log in. Why") for o in repeated)
    for s in range(20):  # stripping never yields an empty text
        assert punctuation_noise("...", random.Random(s))


def test_augment_text_is_seeded_and_keeps_the_words() -> None:
    cfg = AugmentConfig(p_delete=0.2, p_swap=1.0, p_case=1.0, p_punct=1.0)
    text = "Where is my new card? It hasn't arrived yet."
    a = augment_text(text, random.Random(7), cfg)
    assert a == augment_text(text, random.Random(7), cfg)
    strip = str.maketrans("", "", string.punctuation)
    vocab = set(text.lower().translate(strip).split()) | {"hasnt"}
    assert set(a.lower().translate(strip).split()) <= vocab
    assert augment_text(text, random.Random(7), AugmentConfig(0, 0, 0, 0, 0, 0)) == text


def test_augment_split_adds_labelled_copies_reproducibly() -> None:
    texts = ["profit rose sharply this year", "net loss widened again", "ok"]
    labels = ["positive", "negative", "neutral"]
    cfg = AugmentConfig(copies=2, p_delete=0.3, p_swap=1.0)
    t1, y1 = augment_split(texts, labels, cfg, seed=42)
    t2, y2 = augment_split(texts, labels, cfg, seed=42)
    assert (t1, y1) == (t2, y2)
    assert t1[:3] == texts and y1[:3] == labels
    assert 3 < len(t1) <= 3 + 2 * 3
    by_label = {lab: set(t.split()) for t, lab in zip(texts, labels, strict=True)}
    for t, y in zip(t1[3:], y1[3:], strict=True):
        assert t not in texts  # identical copies are left out
        assert set(t.lower().strip("!?").split()) <= by_label[y] | {"ok"}
    assert augment_split(texts, labels, cfg, seed=43)[0] != t1
    with pytest.raises(ValueError):
        augment_split(texts, labels[:2], cfg, seed=42)


def test_config_round_trips_and_refuses_unknown_keys() -> None:
    cfg = AugmentConfig(copies=2, p_delete=0.05)
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(TypeError):
        AugmentConfig.from_dict({"copies": 1, "p_typo": 0.1})


def test_noisy_copy_keeps_order_and_length() -> None:
    texts = ["one two three four", "five six seven", "eight"]
    out = noisy_copy(texts, AugmentConfig(p_delete=0.5))
    assert len(out) == 3 and out == noisy_copy(texts, AugmentConfig(p_delete=0.5))
    assert out[2].lower().rstrip("!?") == "eight"

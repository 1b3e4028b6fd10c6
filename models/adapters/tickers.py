"""Rule-based ticker extraction: cashtags (``$AAPL``), known upper-case tickers and
company names from a small committed table (``artifacts/tickers/companies.json``).

Every entity has type ``TICKER`` and ``key`` = the ticker (a company's primary ticker for
names and alternative share classes; the cashtag itself for tickers not in the table).
Scores say how sure the rule is: cashtag 0.99, company name 0.9, bare ticker 0.8. Bare
tickers that are common words or abbreviations (``ambiguous`` in the table, and every
one-letter ticker) only count as cashtags.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import orjson

from models.base import Entity, ModelOutput
from models.registry import ARTIFACTS_DIR, ModelSpec

DEFAULT_TABLE = ARTIFACTS_DIR / "tickers" / "companies.json"
CASHTAG_SCORE = 0.99
NAME_SCORE = 0.9
BARE_SCORE = 0.8

# "$" + 1-5 letters with an optional share class (BRK.B), not glued to other word
# characters, so "$100" and "US$AAPL" are not cashtags.
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,5}(?:\.[A-Za-z]{1,2})?)(?!\w)")
_BARE = re.compile(r"(?<![\w$.])([A-Z]{2,5}(?:\.[AB])?)(?!\w)")


class TickerExtractor:
    """Finds ticker mentions in text; pure logic, no model weights."""

    def __init__(self, table_path: Path = DEFAULT_TABLE):
        table = orjson.loads(Path(table_path).read_bytes())
        self.ticker_key: dict[str, str] = {}  # any ticker -> primary ticker
        self.bare_ok: set[str] = set()  # tickers safe to match without "$"
        names: dict[str, str] = {}  # company name -> primary ticker
        for company in table["companies"]:
            primary = company["ticker"]
            for t in [primary, *company.get("alt_tickers", [])]:
                self.ticker_key[t] = primary
                if not company.get("ambiguous", False) and len(t) >= 2:
                    self.bare_ok.add(t)
            for name in company.get("names", []):
                names[name] = primary
        self.name_key = names
        # Longest names first so "Bank of America" wins over a shorter overlapping name.
        alternation = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        self._names = re.compile(rf"(?<![\w&])(?:{alternation})(?![\w&])")

    def extract(self, text: str) -> list[Entity]:
        """All non-overlapping ticker entities in ``text``, in order of position."""
        found: list[Entity] = []
        for m in _CASHTAG.finditer(text):
            symbol = m.group(1).upper()
            if not m.group(1).isupper() and symbol not in self.ticker_key:
                continue  # "$something" in lower case is only a cashtag if we know it
            key = self.ticker_key.get(symbol, symbol)
            found.append(Entity(m.group(0), "TICKER", m.start(), m.end(), CASHTAG_SCORE, key))
        for m in self._names.finditer(text):
            key = self.name_key[m.group(0)]
            found.append(Entity(m.group(0), "TICKER", m.start(), m.end(), NAME_SCORE, key))
        for m in _BARE.finditer(text):
            symbol = m.group(1)
            if symbol in self.bare_ok:
                key = self.ticker_key[symbol]
                found.append(Entity(symbol, "TICKER", m.start(), m.end(), BARE_SCORE, key))
        # Keep the best-scoring, then longest, span wherever matches overlap.
        found.sort(key=lambda e: (-e.score, -(e.end - e.start), e.start))
        kept: list[Entity] = []
        for ent in found:
            if all(ent.end <= k.start or ent.start >= k.end for k in kept):
                kept.append(ent)
        return sorted(kept, key=lambda e: e.start)


class TickersAdapter:
    """The ``entities`` task adapter around :class:`TickerExtractor` (label is None)."""

    backbone: str | None = None

    def __init__(self, spec: ModelSpec):
        self.model_id = spec.id
        self.task = spec.task
        self.labels: list[str] = list(spec.labels or ["TICKER"])
        path = spec.artifact_path()
        if path is not None and path.is_dir():
            path = path / "companies.json"
        self.extractor = TickerExtractor(path or DEFAULT_TABLE)

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Entities for each text; ``score`` is the best entity score (1.0 when none)."""
        outputs = []
        for text in texts:
            entities = self.extractor.extract(text)
            score = max((e.score for e in entities), default=1.0)
            outputs.append(ModelOutput(label=None, score=score, probs=None, entities=entities))
        return outputs

"""Rule-based ticker extraction."""

from __future__ import annotations

import pytest

from models.adapters.tickers import TickerExtractor


@pytest.fixture(scope="module")
def extractor() -> TickerExtractor:
    return TickerExtractor()


def keys(extractor: TickerExtractor, text: str) -> list[str | None]:
    return [e.key for e in extractor.extract(text)]


def test_cashtags(extractor: TickerExtractor) -> None:
    text = "$AAPL and $msft up, $BYND down, $BRK.B flat"
    ents = extractor.extract(text)
    assert [e.key for e in ents] == ["AAPL", "MSFT", "BYND", "BRK.B"]
    for e in ents:
        assert text[e.start : e.end] == e.text
        assert e.type == "TICKER"


def test_company_names_and_variants(extractor: TickerExtractor) -> None:
    assert keys(extractor, "Apple and Microsoft beat; Bank of America lags") == [
        "AAPL",
        "MSFT",
        "BAC",
    ]
    assert keys(extractor, "JPMorgan reels in expectations on Beyond Meat") == ["JPM", "BYND"]
    assert keys(extractor, "Google's parent") == ["GOOGL"]
    assert keys(extractor, "$GOOG and FB") == ["GOOGL", "META"]  # alternative tickers


def test_bare_tickers_and_ambiguity(extractor: TickerExtractor) -> None:
    assert keys(extractor, "NVDA and TSLA rallied") == ["NVDA", "TSLA"]
    # Common words / abbreviations only count with a "$".
    assert keys(extractor, "IT ALL COST A LOT, NOW") == []
    assert keys(extractor, "$COST rose") == ["COST"]


def test_not_cashtags(extractor: TickerExtractor) -> None:
    assert keys(extractor, "raised $100 million at $2.5bn valuation") == []
    assert keys(extractor, "nothing to see here") == []
    assert keys(extractor, "") == []


def test_overlaps_keep_the_longest_best_span(extractor: TickerExtractor) -> None:
    ents = extractor.extract("Goldman Sachs and Goldman")
    assert [(e.text, e.key) for e in ents] == [("Goldman Sachs", "GS"), ("Goldman", "GS")]


def test_unknown_cashtag_keeps_its_symbol(extractor: TickerExtractor) -> None:
    assert keys(extractor, "$ZZZQ squeezed") == ["ZZZQ"]

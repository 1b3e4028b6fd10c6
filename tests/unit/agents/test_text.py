from agents.text import clean_text, detect_language, extract_features


def test_clean_text_squeezes_and_strips_controls():
    assert clean_text("  a\u200b\tb\n\nc  ") == "a b c"


def test_zalgo_is_tamed():
    zalgo = "h" + "\u0301" * 30 + "i"
    assert len(clean_text(zalgo)) <= 4


def test_features_find_cashtags_and_urls():
    f = extract_features("Buying $aapl and $TSLA 🚀 see https://x.example/a")
    assert f["cashtags"] == ["AAPL", "TSLA"] and f["urls"] == 1 and f["emoji"] == 1


def test_language_detection_is_offline_and_sane():
    assert detect_language("The quarterly results beat expectations by a wide margin").code == "en"
    assert detect_language("Die Ergebnisse des Quartals waren deutlich besser als erwartet").code == "de"
    assert detect_language("$$$ 123").code == "und"

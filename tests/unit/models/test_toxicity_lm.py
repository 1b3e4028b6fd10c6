"""Toxicity models (converted SVM ensemble, word list) and the Loughran-McDonald lexicon."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.adapters import build_adapter
from models.adapters.lm_lexicon import LMLexiconAdapter, lm_counts, polarity
from models.adapters.toxicity import ToxicitySvmAdapter, WordMatcher
from models.artifacts_io import write_artifact
from models.lexicon_import import BETTER_PROFANITY_CHARS, svm_artifact
from models.registry import ModelSpec

TOXIC = [
    "you stupid idiot, shut up",
    "this is shit and you know it",
    "what a dumb moron you are",
    "go to hell you bastard",
    "you are a worthless piece of crap",
    "shut up you pathetic loser",
]
CLEAN = [
    "thanks for your help with my card",
    "the quarterly results were strong",
    "where is my refund please",
    "have a lovely day",
    "the meeting is on tuesday",
    "I would like to change my address",
]


def test_svm_conversion_equals_scikit_learn_predict_proba(tmp_path: Path) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    # the settings alt-profanity-check uses: English stop words, unigrams, 5 sigmoid folds
    vec = TfidfVectorizer(stop_words="english")
    X = vec.fit_transform(TOXIC * 3 + CLEAN * 3)
    y = [1] * 18 + [0] * 18
    model = CalibratedClassifierCV(LinearSVC(random_state=0), cv=3, method="sigmoid").fit(X, y)
    config, tensors = svm_artifact(vec, model)
    write_artifact(tmp_path, config, tensors)
    spec = ModelSpec(id="t", task="toxicity", kind="linear", adapter="toxicity_svm", artifact=str(tmp_path))
    adapter = ToxicitySvmAdapter(spec)
    probes = [*TOXIC, *CLEAN, "The idiot SHIT!", "", "nothing known here"]
    np.testing.assert_allclose(
        adapter.p_toxic(probes), model.predict_proba(vec.transform(probes))[:, 1], atol=1e-9
    )
    outs = adapter.predict(probes[:2])
    assert [o.label for o in outs] == ["toxic", "toxic"] and set(outs[0].probs or {}) == {"clean", "toxic"}


def test_svm_conversion_refuses_what_it_cannot_reproduce() -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    vec = TfidfVectorizer(ngram_range=(1, 2))
    X = vec.fit_transform(TOXIC * 2 + CLEAN * 2)
    model = CalibratedClassifierCV(LinearSVC(), cv=2, method="sigmoid").fit(X, [1] * 12 + [0] * 12)
    with pytest.raises(ValueError, match="unsupported vectorizer"):
        svm_artifact(vec, model)


def test_word_matcher_whole_words_leetspeak_and_phrases() -> None:
    m = WordMatcher(["shit", "ass", "2 girls 1 cup", "fuck"], BETTER_PROFANITY_CHARS)
    assert m.matches("this is SHIT!") == ["shit"]
    assert m.matches("sh1t happens, f*ck") == ["sh1t", "f*ck"]  # i->1, u->*
    assert m.matches("a$$ and 4ss") == ["a$$", "4ss"]
    assert m.matches("my class assignment, passing assets") == []  # whole words only
    assert m.matches("he said '2 girls 1 cup' once") == ["2 girls 1 cup"]
    assert m.matches("") == [] and m.matches("'' \" ***") == []


@pytest.mark.parametrize("model_id", ["toxicity-svm", "toxicity-words"])
def test_committed_toxicity_models_flag_abuse_not_support_questions(registry, model_id: str) -> None:
    adapter = build_adapter(registry.get(model_id))
    assert adapter.labels == ["clean", "toxic"] and adapter.task == "toxicity"
    outs = adapter.predict(["this is shit", "fuck you", *CLEAN])
    assert [o.label for o in outs] == ["toxic", "toxic"] + ["clean"] * len(CLEAN)
    assert adapter.predict([]) == []


def test_word_list_outputs_have_no_distribution(registry) -> None:
    (out,) = build_adapter(registry.get("toxicity-words")).predict(["what the fuck"])
    assert out.probs is None and out.score == 1.0 and out.extra["matches"] == ["fuck"]


def test_toxicity_catalog_entries_claim_no_accuracy(registry) -> None:
    for spec in registry.for_task("toxicity"):
        assert "accuracy" not in spec.metrics and "macro_f1" not in spec.metrics
        assert "not accuracy" in spec.metrics.get("note", "")


def test_lm_counts_and_polarity() -> None:
    pos, neg = frozenset({"gain", "strong"}), frozenset({"loss", "decline"})
    assert lm_counts("Strong gain offset the LOSS.", pos, neg) == (2, 1)
    assert polarity(2, 1) == pytest.approx(0.25)
    assert polarity(0, 0) == 0.0 and polarity(1, 0) == 0.5 and polarity(0, 3) == -0.75


def test_committed_lm_fin_model(registry) -> None:
    spec = registry.get("lm-fin")
    adapter = build_adapter(spec)
    assert isinstance(adapter, LMLexiconAdapter) and adapter.labels == ["negative", "neutral", "positive"]
    assert {"loss", "losses", "impairment"} <= adapter.negative and {
        "achieve",
        "profitable",
    } <= adapter.positive
    neg, neu, pos = adapter.predict(
        [
            "The company reported a net loss and an impairment charge",
            "The company is based in Helsinki",
            "The company achieved record profitable growth",
        ]
    )
    assert (neg.label, neu.label, pos.label) == ("negative", "neutral", "positive")
    assert neg.extra == {"lm_positive": 0, "lm_negative": 2}
    assert spec.metrics["test_set"] == "fpb50_test" and spec.metrics["accuracy"] > 0.5

"""The pickle-free TF-IDF inference equals scikit-learn's decision function."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from models.adapters.tfidf_linear import TfidfLinearAdapter, export_tfidf_linear
from models.registry import ModelSpec

TRAIN = [
    ("profit rose sharply this quarter", "positive"),
    ("sales increased and margins improved", "positive"),
    ("the company reported record earnings growth", "positive"),
    ("net loss widened as revenue fell", "negative"),
    ("shares dropped after the profit warning", "negative"),
    ("the firm cut jobs amid falling demand", "negative"),
    ("the meeting is scheduled for Tuesday", "neutral"),
    ("the company is based in Helsinki, Finland", "neutral"),
    ("the report covers the period January to March", "neutral"),
]
PROBES = [
    "Profit ROSE and sales increased!",
    "shares dropped; net loss widened",
    "the report is based in Helsinki",
    "completely unseen words only",
    "",
    "Ünïcode café profit rose — naïve test",
]


@pytest.mark.parametrize(
    ("classifier", "binary"),
    [
        (LinearSVC(random_state=0), False),
        (LogisticRegression(), False),
        (LinearSVC(random_state=0), True),
    ],
)
def test_matches_sklearn_decision_function(tmp_path, classifier, binary) -> None:
    pairs = [p for p in TRAIN if not binary or p[1] != "neutral"]
    texts, labels = [t for t, _ in pairs], [y for _, y in pairs]
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    clf = classifier.fit(vec.fit_transform(texts), labels)
    export_tfidf_linear(tmp_path / "m", vec, clf, temperature=1.0, metadata={})
    spec = ModelSpec(id="m", task="t", kind="linear", adapter="tfidf_linear", artifact=str(tmp_path / "m"))
    adapter = TfidfLinearAdapter(spec)

    ours = adapter.decision_function(PROBES)
    theirs = clf.decision_function(vec.transform(PROBES))
    if binary:  # stored as [-s/2, s/2]: the difference is sklearn's single score
        np.testing.assert_allclose(ours[:, 1] - ours[:, 0], theirs, atol=1e-6)
    else:
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert [o.label for o in adapter.predict(PROBES)] == list(clf.predict(vec.transform(PROBES)))
    np.testing.assert_allclose(
        adapter.featurizer.transform(PROBES).toarray(), vec.transform(PROBES).toarray(), atol=1e-9
    )


def test_refuses_unsupported_vectorizer(tmp_path) -> None:
    texts, labels = [t for t, _ in TRAIN], [y for _, y in TRAIN]
    vec = TfidfVectorizer(analyzer="char")
    clf = LinearSVC().fit(vec.fit_transform(texts), labels)
    with pytest.raises(ValueError, match="unsupported"):
        export_tfidf_linear(tmp_path / "m", vec, clf, temperature=1.0, metadata={})


def test_texts_without_known_terms_give_empty_rows(tmp_path) -> None:
    texts, labels = [t for t, _ in TRAIN], [y for _, y in TRAIN]
    vec = TfidfVectorizer(sublinear_tf=True)
    export_tfidf_linear(tmp_path / "m", vec, LinearSVC().fit(vec.fit_transform(texts), labels), 1.0, {})
    spec = ModelSpec(id="m", task="t", kind="linear", adapter="tfidf_linear", artifact=str(tmp_path / "m"))
    featurizer = TfidfLinearAdapter(spec).featurizer
    none = featurizer.transform(["", "zzz qqq"])
    assert none.shape == (2, len(vec.vocabulary_)) and none.nnz == 0
    mixed = featurizer.transform(["zzz", "profit rose", ""]).toarray()
    np.testing.assert_allclose(mixed, vec.transform(["zzz", "profit rose", ""]).toarray(), atol=1e-12)
    assert mixed[0].sum() == 0 and np.isclose(np.linalg.norm(mixed[1]), 1.0)

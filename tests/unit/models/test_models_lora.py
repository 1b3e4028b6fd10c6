"""MiniLM + LoRA models: word splitting, IOB2 decoding, span mapping, and the committed
artifacts (load offline onto the packaged base model, well-formed outputs, NER offsets)."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from models.adapters import build_adapter
from models.adapters._common import outputs_with_oos
from models.base import Entity
from models.evaluate import spans_to_iob
from models.lora import decode_iob, iob_to_spans, split_words, word_shape
from models.registry import Registry

LORA_CLASSIFIERS = [
    "lora-fin",
    "lora-fin-refit",
    "lora-fin-allagree",
    "lora-fin-mpnet",
    "lora-sst2",
    "lora-clinc150",
]
OOS_ID = "lora-clinc150"
NER_ID = "lora-conll"
NER_TEXTS = [
    "German Chancellor Angela Merkel met Barack Obama in Washington on Tuesday.",
    "Shares of Microsoft Corp. rose 3% after the U.S. Federal Reserve kept rates on hold.",
    "Fiat signs a deal with Spanish lender Banco Santander .",
    "nothing to see here",
    "",
    "   ",
]


def _present(model_id: str) -> bool:
    return model_id in Registry.load(include_test=True, include_unserved=True)


# --- pure helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Fiat signs deal .", ["Fiat", "signs", "deal", "."]),
        (
            "He met (in Paris) Acme Inc. today.",
            ["He", "met", "(", "in", "Paris", ")", "Acme", "Inc", ".", "today", "."],
        ),
        ('Germany\'s rep, "Werner" said', ["Germany", "'s", "rep", ",", '"', "Werner", '"', "said"]),
        ("the U.S. economy", ["the", "U.S.", "economy"]),
        ("", []),
    ],
)
def test_split_words_offsets(text: str, words: list[str]) -> None:
    out = split_words(text)
    assert [w for w, _, _ in out] == words
    for w, start, end in out:
        assert text[start:end] == w


def test_iob_to_spans_follows_seqeval() -> None:
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG", "I-ORG"]
    assert iob_to_spans(tags) == [("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5), ("ORG", 5, 7)]
    assert iob_to_spans(["O", "O"]) == []


TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]


def _probs(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, dtype=float)


def test_decode_iob_never_starts_an_entity_with_i() -> None:
    # argmax reads "I-ORG O", which seqeval counts as an ORG entity: a stray fragment.
    p = _probs([[0.4, 0.05, 0.0, 0.1, 0.45], [0.9, 0.02, 0.02, 0.03, 0.03]])
    assert [TAGS[k] for k in p.argmax(1)] == ["I-ORG", "O"]
    assert decode_iob(p, TAGS) == ["O", "O"]


def test_decode_iob_repairs_a_type_switch_inside_an_entity() -> None:
    # argmax: B-PER I-ORG (two entities); the best valid sequence keeps one PER.
    p = _probs([[0.0, 0.9, 0.0, 0.1, 0.0], [0.1, 0.0, 0.4, 0.0, 0.5]])
    assert [TAGS[k] for k in p.argmax(1)] == ["B-PER", "I-ORG"]
    assert decode_iob(p, TAGS) == ["B-PER", "I-PER"]


def test_decode_iob_keeps_a_valid_argmax() -> None:
    p = _probs([[0.1, 0.8, 0.05, 0.05, 0.0], [0.1, 0.0, 0.8, 0.1, 0.0], [0.9, 0.0, 0.0, 0.1, 0.0]])
    assert decode_iob(p, TAGS) == ["B-PER", "I-PER", "O"]
    assert decode_iob(np.zeros((0, 5)), TAGS) == []


def test_spans_to_iob_round_trip() -> None:
    tokens = ["Fiat", "signs", "deal", "with", "Spanish", "Banco", "Santander", "."]
    text = " ".join(tokens)
    spans, pos = [], 0
    for t in tokens:
        spans.append((pos, pos + len(t)))
        pos += len(t) + 1
    ents = [
        Entity("Fiat", "ORG", 0, 4),
        Entity("Spanish", "MISC", 21, 28),
        Entity("Banco Santander", "ORG", 29, 44),
    ]
    for e in ents:
        assert text[e.start : e.end] == e.text
    assert spans_to_iob(ents, spans) == ["B-ORG", "O", "O", "O", "B-MISC", "B-ORG", "I-ORG", "O"]


def test_outputs_with_oos_follows_the_threshold() -> None:
    probs = np.array([[0.9, 0.05, 0.05], [0.5, 0.3, 0.2], [0.34, 0.33, 0.33]])
    outs = outputs_with_oos(probs, ["a", "b", "c"], 0.6)
    assert [o.label for o in outs] == ["a", "oos", "oos"]
    for out, top in zip(outs, probs.max(1), strict=True):
        assert out.probs is not None and set(out.probs) == {"a", "b", "c", "oos"}
        assert math.isclose(sum(out.probs.values()), 1.0, abs_tol=1e-9)
        assert out.extra["max_in_scope"] == pytest.approx(top)


def test_oos_threshold_keeps_in_scope_accuracy_within_the_recall_floor() -> None:
    from models.oos import tune_threshold

    # two right in-scope texts (top 0.9, 0.6), two oos texts (top 0.545, 0.705)
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.455, 0.545], [0.705, 0.295]])
    gold = ["a", "a", "oos", "oos"]
    assert tune_threshold(probs, gold, ["a", "b"], 0.0) == 0.55  # no floor: the 0.545 oos is free
    assert tune_threshold(probs, gold, ["a", "b"], 0.5) == 0.55  # floor met without a loss
    assert tune_threshold(probs, gold, ["a", "b"], 1.0) == 0.71  # all oos: costs the 0.6 text


def test_oos_threshold_without_a_reachable_floor_takes_the_best_recall() -> None:
    from models.oos import tune_threshold

    # an oos text more confident (0.995) than any threshold on the grid
    probs = np.array([[0.9, 0.1], [0.995, 0.005], [0.5, 0.5]])
    gold = ["a", "oos", "oos"]
    assert tune_threshold(probs, gold, ["a", "b"], 1.0) == 0.51  # catches the one it can, keeps "a"


def test_word_shapes() -> None:
    assert [word_shape(w) for w in ["the", "Paris", "EU", "McDonald", "1996", ",", "A"]] == [
        0,
        1,
        2,
        3,
        4,
        5,
        1,
    ]


# --- committed artifacts ---------------------------------------------------------------


@pytest.mark.parametrize("model_id", LORA_CLASSIFIERS)
def test_lora_classifier_artifact(registry: Registry, model_id: str) -> None:
    if not _present(model_id):
        pytest.skip(f"{model_id} artifact not trained")
    spec = registry.get(model_id)
    path = spec.artifact_path()
    assert path is not None
    assert {p.name for p in path.iterdir()} >= {"model.json", "weights.safetensors"}
    # LoRA + head only: 1.3 MB at rank 8, 5.3 MB at rank 32 (lora-fin); the full MiniLM is 90 MB
    assert (path / "weights.safetensors").stat().st_size < 8_000_000
    adapter = build_adapter(spec)
    assert adapter.backbone is None  # cannot share the frozen encoder's pass
    texts = ["Operating profit rose to EUR 13.1 mn.", "a dull, lifeless film.", ""]
    outs = adapter.predict(texts)
    assert len(outs) == 3
    for out in outs:
        assert out.probs is not None and set(out.probs) == set(spec.labels)
        assert math.isclose(sum(out.probs.values()), 1.0, abs_tol=1e-4)
        assert out.label == max(out.probs, key=out.probs.get)
    # thread-safe: the infer stage calls predict from worker threads
    with ThreadPoolExecutor(2) as pool:
        again = list(pool.map(lambda t: adapter.predict([t])[0], texts))
    for a, b in zip(outs, again, strict=True):
        assert a.label == b.label
        assert math.isclose(a.score, b.score, abs_tol=1e-4)


def test_lora_oos_threshold(registry: Registry) -> None:
    """The CLINC150 classifier labels oos exactly when its top in-scope probability is
    below the threshold tuned on validation."""
    if not _present(OOS_ID):
        pytest.skip(f"{OOS_ID} artifact not trained")
    spec = registry.get(OOS_ID)
    assert spec.labels[-1] == "oos" and spec.labels.count("oos") == 1
    adapter = build_adapter(spec)
    thr = adapter.oos_threshold
    assert thr is not None and 0.0 < thr < 1.0
    texts = ["what is my bank balance", "set an alarm for 7 am", "what is the meaning of a xylophone"]
    texts += ["purple monkey dishwasher quantum", "tell me about the history of the roman empire"]
    for out in adapter.predict(texts):
        assert (out.label == "oos") == (out.extra["max_in_scope"] < thr)
    assert adapter.predict(["what is my bank balance"])[0].label == "balance"


def test_lora_ner_offsets_match_text(registry: Registry) -> None:
    if not _present(NER_ID):
        pytest.skip(f"{NER_ID} artifact not trained")
    spec = registry.get(NER_ID)
    assert spec.labels == ["PER", "LOC", "ORG", "MISC"]
    adapter = build_adapter(spec)
    assert adapter.backbone is None
    outs = adapter.predict(NER_TEXTS)
    assert len(outs) == len(NER_TEXTS)
    found = 0
    for text, out in zip(NER_TEXTS, outs, strict=True):
        assert out.label is None and out.probs is None
        assert out.entities is not None
        for e in out.entities:
            assert e.type in spec.labels
            assert 0 <= e.start < e.end <= len(text)
            assert text[e.start : e.end] == e.text
            assert e.text == e.text.strip() and e.text
            assert 0.0 <= e.score <= 1.0 + 1e-9
            found += 1
    assert outs[4].entities == [] and outs[5].entities == []
    assert found >= 3
    kinds = {(e.text, e.type) for e in outs[0].entities or []}
    assert ("Angela Merkel", "PER") in kinds or ("Barack Obama", "PER") in kinds

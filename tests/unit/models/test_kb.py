"""The knowledge-base index and the kb_retrieval adapter's live updates (no broker; a fake
encoder except where the real artifact is checked)."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import orjson
import pytest

from agents.kb import decode, kb_adapters
from models.adapters.kb import DIM, KBRetrievalAdapter
from models.kb import (
    BUNDLED_ARTICLES,
    Article,
    BadArticle,
    Change,
    KBIndex,
    article_text,
    load_articles,
    parse_record,
    text_hash,
)
from models.registry import ModelSpec, Registry


def unit(*hot: int, dim: int = 8) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    for i in hot:
        v[i] = 1.0
    return v


def art(aid: str, title: str = "", body: str = "", intents: tuple[str, ...] = ()) -> Article:
    return Article(id=aid, title=title or f"title {aid}", body=body, intents=list(intents))


# --- records --------------------------------------------------------------------------------


def test_records_decode_to_upserts_and_deletions() -> None:
    up = parse_record(b"kb-1", orjson.dumps({"title": "T", "body": "B", "intents": ["card_arrival"]}))
    assert up.id == "kb-1" and up.article is not None and up.article.intents == ["card_arrival"]
    assert parse_record(b"kb-1", None) == Change("kb-1", None)  # tombstone
    assert parse_record(b"kb-1", b"") == Change("kb-1", None)
    assert parse_record(b"kb-1", b'{"id": "kb-1", "deleted": true}') == Change("kb-1", None)
    assert parse_record(None, b'{"id": "kb-2", "title": "T"}').id == "kb-2"  # id from the value
    extra = parse_record(b"kb-3", b'{"title": "T", "tags": ["x"], "future_field": 1}')
    assert extra.article is not None and extra.article.tags == ["x"]


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        (b"kb-1", b'{"id": "kb-2", "title": "T"}', "differ"),
        (None, b'{"title": "T"}', "no id"),
        (None, None, "needs the article id"),
        (b"kb-1", b"not json", "not JSON"),
        (b"kb-1", b"[1, 2]", "JSON object"),
        (b"kb-1", b'{"body": "no title"}', "title"),
    ],
)
def test_bad_records_are_refused(key, value, match: str) -> None:
    with pytest.raises(BadArticle, match=match):
        parse_record(key, value)


def test_the_bundled_articles_load() -> None:
    articles = load_articles(BUNDLED_ARTICLES)
    assert len(articles) == 172
    assert len({a.id for a in articles}) == 172
    assert sum(not a.intents for a in articles) == 19
    assert article_text(articles[0]).startswith("Where is my new card? Once you order")
    assert article_text(art("x", title="Fees", body="None.")) == "Fees. None."


# --- the index ------------------------------------------------------------------------------


def test_top_k_is_exact_cosine_best_first() -> None:
    index = KBIndex(8)
    index.replace([(art("a"), unit(0)), (art("b"), unit(1)), (art("c"), unit(0, 1)), (art("d"), unit(2))])
    (hits,) = index.search(unit(0)[None, :] * 5.0, k=3)  # queries are normalised
    assert [h.id for h in hits] == ["a", "c", "b"]
    assert [h.score for h in hits] == [1.0, pytest.approx(0.7071, abs=1e-4), 0.0]
    assert hits[0].title == "title a"
    many = index.search(np.stack([unit(1), unit(2)]), k=10)  # k above the size: all of them
    assert [len(h) for h in many] == [4, 4]
    assert many[1][0].id == "d"


def test_negative_cosine_is_clipped_to_zero() -> None:
    index = KBIndex(8)
    index.replace([(art("a"), unit(0))])
    (hits,) = index.search(-unit(0)[None, :], k=1)
    assert hits[0].score == 0.0


def test_add_update_delete() -> None:
    index = KBIndex(8)
    assert index.search(unit(0)[None, :]) == [[]]  # empty index
    index.upsert([(art("a"), unit(0)), (art("b"), unit(1))])
    assert len(index) == 2 and "a" in index
    index.upsert([(art("c"), unit(2))])  # add
    assert index.ids == ("a", "b", "c")
    index.upsert([(art("a", title="new title"), unit(3))])  # update: text and vector
    assert len(index) == 3 and index.get("a").title == "new title"
    (hits,) = index.search(unit(3)[None, :], k=1)
    assert hits[0].id == "a" and hits[0].title == "new title"
    (hits,) = index.search(unit(0)[None, :], k=1)
    assert hits[0].score == 0.0  # the old vector is gone
    assert index.delete(["b", "zzz"]) == 1
    assert index.ids == ("c", "a") and "b" not in index
    assert index.delete(["b"]) == 0
    assert [h.id for h in index.search(unit(1)[None, :], k=5)[0]] == ["c", "a"]
    index.replace([])
    assert len(index) == 0


def test_wrong_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        KBIndex(8).upsert([(art("a"), np.ones(4))])


def test_a_search_sees_one_consistent_snapshot() -> None:
    index = KBIndex(8)
    index.replace([(art("a"), unit(0))])
    before = index._snap
    index.upsert([(art("b"), unit(1))])
    assert before.ids == ("a",) and before.matrix.shape == (1, 8)  # never mutated in place


# --- the adapter's live knowledge base ---------------------------------------------------------


class FakeEncoder:
    """Bag of words: each word a fixed random direction, so shared words mean similarity."""

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        self.encoded.extend(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace(".", " ").replace("?", " ").split():
                seed = int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "little")
                out[i] += np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out


def _spec(tmp_path, articles: list[Article], artifact: str | None = None) -> ModelSpec:
    path = tmp_path / "articles.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(a.model_dump()) for a in articles) + b"\n")
    return ModelSpec(
        id="kb-test",
        task="kb",
        kind="retrieval",
        adapter="kb_retrieval",
        artifact=artifact,
        backbone="minilm",
        params={"k": 2, "articles": str(path)},
    )


BUNDLED = [
    art("b-1", "Card delivery times", "your new card arrives by post in five days", ("card_arrival",)),
    art("b-2", "Exchange rates", "we convert currency at the live rate", ("exchange_rate",)),
    art("b-3", "Top up by bank transfer", "send money from another bank to top up", ("topping_up_by_card",)),
]
ORBIT = art("kb-9001", "Orbit card moon shuttle", "stardust points buy a seat on the orbit moon shuttle")


def _upsert(a: Article) -> Change:
    return Change(a.id, a)


def test_bundled_until_the_topic_has_articles(tmp_path) -> None:
    enc = FakeEncoder()
    kb = KBRetrievalAdapter(_spec(tmp_path, BUNDLED), encoder=enc)
    (out,) = kb.predict(["when does my new card arrive"])
    assert kb.source == "bundled" and out.label == "b-1"
    assert out.extra["kb_source"] == "bundled" and out.extra["kb_size"] == 3
    assert len(out.extra["articles"]) == 2  # k from the spec
    assert out.score == out.extra["articles"][0]["score"]

    kb.apply([], reset=True)  # the topic was read to its end: empty
    assert kb.source == "bundled" and len(kb.index) == 3

    kb.apply([_upsert(ORBIT)])  # the first article switches to the topic's state
    assert kb.source == "topic" and kb.index.ids == ("kb-9001",)
    (out,) = kb.predict(["can stardust points buy a moon shuttle seat"])
    assert out.label == "kb-9001"


def test_live_add_update_delete_reembeds_only_what_changed(tmp_path) -> None:
    enc = FakeEncoder()
    kb = KBRetrievalAdapter(_spec(tmp_path, BUNDLED), encoder=enc)
    kb.apply([_upsert(a) for a in BUNDLED], reset=True)  # the seed, published to the topic
    assert kb.source == "topic" and len(kb.index) == 3
    seen = len(enc.encoded)

    kb.apply([_upsert(ORBIT)])  # add
    assert len(kb.index) == 4 and len(enc.encoded) == seen + 1
    assert kb.predict(["stardust points for the moon shuttle"])[0].label == "kb-9001"

    before = len(enc.encoded)
    kb.apply([_upsert(BUNDLED[0])])  # republished unchanged: nothing to embed
    assert len(enc.encoded) == before
    changed = art("b-2", "Exchange rates", "stardust points have no exchange rate", ("exchange_rate",))
    summary = kb.apply([_upsert(changed)])  # update: re-embedded
    assert summary == {"upserted": 1, "deleted": 0, "size": 4}
    assert enc.encoded[-1] == article_text(changed)

    summary = kb.apply([Change("kb-9001", None), Change("missing", None)])  # delete
    assert summary == {"upserted": 0, "deleted": 1, "size": 3}
    assert "kb-9001" not in kb.index
    assert all(h["id"] != "kb-9001" for h in kb.predict(["moon shuttle"])[0].extra["articles"])

    # an upsert and a deletion of one id in one batch: the later one wins
    kb.apply([_upsert(ORBIT), Change("kb-9001", None)])
    assert "kb-9001" not in kb.index
    kb.apply([Change("kb-9001", None), _upsert(ORBIT)])
    assert "kb-9001" in kb.index


def test_deleting_every_article_falls_back_to_the_bundled_file(tmp_path) -> None:
    kb = KBRetrievalAdapter(_spec(tmp_path, BUNDLED), encoder=FakeEncoder())
    kb.apply([_upsert(ORBIT)], reset=True)
    assert kb.source == "topic" and kb.index.ids == ("kb-9001",)
    kb.apply([Change("kb-9001", None)])
    assert kb.source == "bundled" and len(kb.index) == 3


def test_reset_rebuilds_from_the_records_alone(tmp_path) -> None:
    kb = KBRetrievalAdapter(_spec(tmp_path, BUNDLED), encoder=FakeEncoder())
    kb.apply([_upsert(ORBIT), _upsert(BUNDLED[0])], reset=True)
    assert set(kb.index.ids) == {"kb-9001", "b-1"}
    # read again after a reconnect: the tombstone of b-1 was compacted away meanwhile
    kb.apply([_upsert(ORBIT)], reset=True)
    assert kb.index.ids == ("kb-9001",)


def test_precomputed_vectors_spare_the_encoder(tmp_path) -> None:
    """The committed artifact holds the bundled articles' vectors: a starting worker embeds
    none of them (if this fails, the articles changed: run `streamfuse kb build`)."""
    enc = FakeEncoder()
    spec = Registry.load().get("kb-retrieval")
    kb = KBRetrievalAdapter(spec, encoder=enc)
    kb.use_bundled()
    assert len(kb.index) == 172 and enc.encoded == []
    texts = {text_hash(article_text(a)) for a in load_articles()}
    assert texts <= set(kb._vectors)


def test_the_follower_finds_kb_models_and_decodes_records() -> None:
    kb = SimpleNamespace(task="kb", apply=lambda *a: None)
    other = SimpleNamespace(task="intent")
    assert kb_adapters({"k": kb, "i": other}) == [kb]

    def rec(key, value, offset):
        return SimpleNamespace(key=key, value=value, topic="sf.kb", partition=0, offset=offset)

    changes = decode([rec(b"kb-1", b'{"title": "T"}', 0), rec(b"kb-2", b"garbage", 1), rec(b"kb-1", None, 2)])
    assert [(c.id, c.article is not None) for c in changes] == [("kb-1", True), ("kb-1", False)]

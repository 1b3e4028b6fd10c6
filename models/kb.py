"""The help-centre knowledge base as a searchable index (pure: no Kafka, no encoder).

An :class:`Article` is ``{id, title, body, intents, tags}`` (``data/kb/README.md``).
:class:`KBIndex` holds one L2-normalised vector per article (the MiniLM embedding of its
title and body) and answers exact top-k cosine queries with one matrix product.

Exact search is the right tool at this size: 172 articles x 384 dimensions is a 264 KB
matrix, and a query batch against it costs microseconds next to the milliseconds of the
encoder pass that produced the queries (``streamfuse eval kb-retrieval`` measures both).
An approximate-nearest-neighbour library would add a dependency and recall loss to save
nothing until the knowledge base has hundreds of thousands of articles.

Updates are copy-on-write: every change builds a new immutable snapshot and swaps it in
with one assignment, so a search running in the model thread always sees a consistent
(ids, titles, matrix) triple while the knowledge-base follower changes the index.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

BUNDLED_ARTICLES = Path(__file__).resolve().parent.parent / "data" / "kb" / "articles.jsonl"


class Article(BaseModel):
    """One help-centre article (unknown fields are ignored, so the format can grow)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=1_000)
    body: str = Field(default="", max_length=100_000)
    intents: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class BadArticle(ValueError):
    """A knowledge-base record that is neither an article nor a deletion."""


@dataclass(slots=True, frozen=True)
class Change:
    """One knowledge-base record, decoded: an upsert (``article``) or a deletion (None)."""

    id: str
    article: Article | None


def parse_record(key: bytes | str | None, value: bytes | Mapping[str, Any] | None) -> Change:
    """Decode one ``sf.kb`` record (key = article id, value = article JSON).

    A null value (a compaction tombstone) or ``{"deleted": true}`` deletes the article.
    The key wins over a missing ``id`` in the value; a value whose ``id`` differs from the
    key is refused rather than guessed at.
    """
    kid = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if value is None or (isinstance(value, bytes) and not value.strip()):
        if not kid:
            raise BadArticle("a deletion (null value) needs the article id as its key")
        return Change(kid, None)
    if isinstance(value, bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise BadArticle(f"value is not JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise BadArticle(f"value must be a JSON object, not {type(value).__name__}")
    vid = value.get("id")
    if kid and vid is not None and vid != kid:
        raise BadArticle(f"key {kid!r} and value id {vid!r} differ")
    aid = kid or vid
    if not isinstance(aid, str) or not aid:
        raise BadArticle("the article has no id (neither a key nor an id field)")
    if value.get("deleted") is True:
        return Change(aid, None)
    try:
        return Change(aid, Article.model_validate({**value, "id": aid}))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise BadArticle(f"article {aid!r}: {where}: {first['msg']}") from None


def load_articles(path: Path = BUNDLED_ARTICLES) -> list[Article]:
    """Articles from a JSON Lines file (blank lines skipped; a bad line raises)."""
    out = []
    for n, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            change = parse_record(None, line)
        except BadArticle as exc:
            raise BadArticle(f"{path}:{n}: {exc}") from None
        if change.article is not None:
            out.append(change.article)
    return out


def article_text(article: Article) -> str:
    """What is embedded for an article: its title, then its body."""
    title = article.title.strip()
    sep = " " if title[-1:] in ".?!:" else ". "
    return f"{title}{sep}{article.body.strip()}".strip()


def text_hash(text: str) -> str:
    """Content key of an embedded text (vectors are reused for unchanged articles)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass(slots=True, frozen=True)
class Hit:
    """One retrieved article."""

    id: str
    title: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "score": self.score}


@dataclass(slots=True, frozen=True)
class _Snapshot:
    ids: tuple[str, ...] = ()
    articles: Mapping[str, Article] = field(default_factory=dict)
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))


def _normalise(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


class KBIndex:
    """Exact top-k cosine search over article vectors, with add / update / delete."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._snap = _Snapshot(matrix=np.zeros((0, dim), dtype=np.float32))
        self._write = threading.Lock()  # serialises writers; readers never wait

    def __len__(self) -> int:
        return len(self._snap.ids)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._snap.articles

    @property
    def ids(self) -> tuple[str, ...]:
        return self._snap.ids

    def get(self, article_id: str) -> Article | None:
        return self._snap.articles.get(article_id)

    def vector(self, article_id: str) -> np.ndarray | None:
        snap = self._snap
        if article_id not in snap.articles:
            return None
        return snap.matrix[snap.ids.index(article_id)].copy()

    def replace(self, items: Iterable[tuple[Article, np.ndarray]]) -> None:
        """Make the index exactly ``items`` (a rebuild)."""
        with self._write:
            self._snap = self._build({}, items)

    def upsert(self, items: Iterable[tuple[Article, np.ndarray]]) -> None:
        """Add new articles and replace changed ones (their vectors with them)."""
        with self._write:
            snap = self._snap
            current = {aid: (snap.articles[aid], snap.matrix[i]) for i, aid in enumerate(snap.ids)}
            self._snap = self._build(current, items)

    def delete(self, article_ids: Iterable[str]) -> int:
        """Remove articles; returns how many were present."""
        drop = set(article_ids)
        with self._write:
            snap = self._snap
            keep = [i for i, aid in enumerate(snap.ids) if aid not in drop]
            if len(keep) == len(snap.ids):
                return 0
            self._snap = _Snapshot(
                ids=tuple(snap.ids[i] for i in keep),
                articles={snap.ids[i]: snap.articles[snap.ids[i]] for i in keep},
                matrix=snap.matrix[keep].copy(),
            )
            return len(snap.ids) - len(keep)

    def _build(
        self,
        current: dict[str, tuple[Article, np.ndarray]],
        items: Iterable[tuple[Article, np.ndarray]],
    ) -> _Snapshot:
        for article, vector in items:
            vec = _normalise(vector)[0]
            if vec.shape != (self.dim,):
                raise ValueError(f"article {article.id!r}: vector of shape {vec.shape}, want ({self.dim},)")
            current.pop(article.id, None)  # an update moves the article to the end
            current[article.id] = (article, vec)
        ids = tuple(current)
        matrix = (
            np.stack([current[a][1] for a in ids]).astype(np.float32)
            if ids
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        return _Snapshot(ids=ids, articles={a: current[a][0] for a in ids}, matrix=matrix)

    def search(self, queries: np.ndarray, k: int = 3) -> list[list[Hit]]:
        """The ``k`` most similar articles per query row, best first.

        Scores are cosine similarities clipped to [0, 1] (queries are normalised here;
        a negative cosine means unrelated, and scores double as confidences). Ties go to
        the article added first, so results are deterministic.
        """
        q = _normalise(queries) if len(queries) else np.zeros((0, self.dim), dtype=np.float32)
        snap = self._snap
        n = len(snap.ids)
        if n == 0 or k <= 0:
            return [[] for _ in range(len(q))]
        sims = q @ snap.matrix.T
        k = min(k, n)
        if n <= 10_000:  # a stable full sort: ties go to the earlier article
            top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        else:
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            top = np.take_along_axis(part, np.argsort(-np.take_along_axis(sims, part, 1), 1), 1)
        out: list[list[Hit]] = []
        for row, cand in zip(sims, top, strict=True):
            hits = []
            for j in cand.tolist():
                aid = snap.ids[j]
                score = round(min(max(float(row[j]), 0.0), 1.0), 4)
                hits.append(Hit(aid, snap.articles[aid].title, score))
            out.append(hits)
        return out


def answers(article: Article, intent: str) -> bool:
    """The mapping rule of ``data/kb/README.md``: listed in ``intents``, and only then."""
    return intent in article.intents

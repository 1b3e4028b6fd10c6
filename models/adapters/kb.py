"""Knowledge-base retrieval as a model: help-centre articles for a support message.

A head on the shared MiniLM backbone (task ``kb``): the message's embedding, computed once
for every head on the backbone, is compared with each article's embedding (title + body)
by exact cosine similarity (:class:`models.kb.KBIndex`). The output's ``label`` is the best
article's id, ``score`` its cosine similarity, and ``extra["articles"]`` the top ``k``
(default 3) as ``{id, title, score}``.

The knowledge base is live. :meth:`KBRetrievalAdapter.apply` takes the decoded records of
the compacted ``sf.kb`` topic (the infer worker's follower, ``agents/kb.py``, feeds it)
and updates the index in place: new and changed articles are embedded, deleted ones
dropped. The index is the topic's current state whenever that state has articles, and the
bundled ``data/kb/articles.jsonl`` otherwise (before the topic is seeded, or after every
article was deleted), so every worker derives the same index from the same topic.

Artifact ``models/artifacts/kb-retrieval/``: ``model.json`` (settings, and the content
hash of each precomputed vector) and ``weights.safetensors`` (``E``: the bundled articles'
embeddings, so a starting worker does not spend the encoder's time on them; any article
whose text differs is embedded when it arrives). ``streamfuse kb build`` rewrites it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.artifacts_io import read_config, read_tensors, write_artifact
from models.base import ModelOutput
from models.kb import BUNDLED_ARTICLES, Article, Change, KBIndex, article_text, load_articles, text_hash
from models.registry import ModelSpec

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
DIM = 384  # all-MiniLM-L6-v2
DEFAULT_K = 3
EMBED_CHUNK = 16  # articles per encoder call: inference interleaves with a rebuild


def _resolve(path: str | None) -> Path:
    if not path:
        return BUNDLED_ARTICLES
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


class KBRetrievalAdapter:
    """Exact top-k cosine retrieval of articles, on the shared MiniLM encoder."""

    backbone: str | None = "minilm"

    def __init__(self, spec: ModelSpec, encoder: Any = None) -> None:
        self.model_id = spec.id
        self.task = spec.task
        self.labels: list[str] = list(spec.labels)  # article ids are an open, changing set
        self.k = int(spec.params.get("k", DEFAULT_K))
        self.bundled_path = _resolve(spec.params.get("articles"))
        self.index = KBIndex(DIM)
        self.source: str | None = None  # "bundled" | "topic", set on first use
        self._topic: dict[str, Article] = {}  # the topic's current state
        self._vectors: dict[str, np.ndarray] = {}  # text hash -> embedding (reuse)
        self._lock = threading.Lock()  # one index change at a time
        self._encoder = encoder
        directory = spec.artifact_path()
        if directory is not None and directory.is_dir():
            self._load_precomputed(directory)

    # --- encoder ------------------------------------------------------------------------
    @property
    def encoder(self):
        """The process-wide MiniLM encoder (loaded on first use, shared by all heads)."""
        if self._encoder is None:
            from models.encoder import get_encoder

            self._encoder = get_encoder()
        return self._encoder

    def _load_precomputed(self, directory: Path) -> None:
        try:
            config = read_config(directory)
            vectors = read_tensors(directory).get("E")
        except FileNotFoundError:
            return
        hashes = config.get("hashes") or []
        if vectors is None or len(hashes) != len(vectors) or vectors.shape[1:] != (DIM,):
            log.warning("%s: precomputed article vectors do not match model.json; ignoring them", directory)
            return
        self._vectors.update({h: v.astype(np.float32) for h, v in zip(hashes, vectors, strict=True)})

    def embed_articles(self, articles: Sequence[Article]) -> list[tuple[Article, np.ndarray]]:
        """Each article with its embedding; only texts not seen before are encoded."""
        texts = [article_text(a) for a in articles]
        keys = [text_hash(t) for t in texts]
        todo = list(dict.fromkeys(k for k in keys if k not in self._vectors))
        if todo:
            text_of = dict(zip(keys, texts, strict=True))
            for start in range(0, len(todo), EMBED_CHUNK):
                chunk = todo[start : start + EMBED_CHUNK]
                vecs = self.encoder.encode([text_of[k] for k in chunk], batch_size=EMBED_CHUNK)
                self._vectors.update(zip(chunk, np.asarray(vecs, dtype=np.float32), strict=True))
        return [(a, self._vectors[k]) for a, k in zip(articles, keys, strict=True)]

    # --- the live knowledge base ------------------------------------------------------------
    def use_bundled(self) -> None:
        """Serve the bundled articles (the fallback while the topic has none)."""
        with self._lock:
            self._use_bundled()

    def _use_bundled(self) -> None:
        articles = load_articles(self.bundled_path)
        self.index.replace(self.embed_articles(articles))
        self.source = "bundled"
        log.info("%s: serving %d bundled articles from %s", self.model_id, len(articles), self.bundled_path)

    def apply(self, changes: Iterable[Change], reset: bool = False) -> dict[str, int]:
        """Apply knowledge-base records in topic order; returns what changed.

        The index is the topic's state when that has articles, else the bundled file. The
        first article to arrive switches from the bundled file to the topic (a rebuild);
        after that, changes are applied one by one (an update re-embeds only a changed text).
        ``reset`` means ``changes`` are the whole topic, read from its beginning: the state
        is rebuilt from them alone.
        """
        with self._lock:
            if reset:
                self._topic = {}
                self.source = None
            last: dict[str, Article | None] = {}
            for ch in changes:
                if ch.article is None:
                    self._topic.pop(ch.id, None)
                else:
                    self._topic[ch.id] = ch.article
                last[ch.id] = ch.article
            if not self._topic:
                if self.source != "bundled":
                    self._use_bundled()
                return {"upserted": 0, "deleted": 0, "size": len(self.index)}
            if self.source != "topic":
                self.index.replace(self.embed_articles(list(self._topic.values())))
                self.source = "topic"
                log.info("%s: serving %d articles from the topic", self.model_id, len(self.index))
                return {"upserted": len(self._topic), "deleted": 0, "size": len(self.index)}
            ups = [a for a in last.values() if a is not None]
            gone = [aid for aid, a in last.items() if a is None]
            if ups:
                self.index.upsert(self.embed_articles(ups))
            deleted = self.index.delete(gone) if gone else 0
            return {"upserted": len(ups), "deleted": deleted, "size": len(self.index)}

    def _ensure_loaded(self) -> None:
        if self.source is None:
            with self._lock:
                if self.source is None:
                    self._use_bundled()

    # --- prediction ------------------------------------------------------------------------
    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Encode and retrieve for a batch; one output per text, in order."""
        if not texts:
            return []
        return self.predict_embeddings(self.encoder.encode(texts))

    def predict_embeddings(self, embeddings: np.ndarray) -> list[ModelOutput]:
        """Retrieve for precomputed MiniLM embeddings (one encoder pass for every head)."""
        self._ensure_loaded()
        source, size = self.source, len(self.index)
        outputs = []
        for hits in self.index.search(np.asarray(embeddings, dtype=np.float32), self.k):
            outputs.append(
                ModelOutput(
                    label=hits[0].id if hits else None,
                    score=hits[0].score if hits else 0.0,
                    extra={"articles": [h.to_dict() for h in hits], "kb_source": source, "kb_size": size},
                )
            )
        return outputs


def build_artifact(directory: Path, articles_path: Path = BUNDLED_ARTICLES, encoder: Any = None) -> int:
    """Precompute the bundled articles' embeddings into ``directory`` (model.json +
    weights.safetensors); returns the number of articles."""
    if encoder is None:
        from models.encoder import get_encoder

        encoder = get_encoder()
    from models.encoder import MAX_LENGTH

    articles = load_articles(articles_path)
    texts = [article_text(a) for a in articles]
    vectors = np.asarray(encoder.encode(texts, batch_size=EMBED_CHUNK), dtype=np.float32)
    try:
        articles_ref = str(articles_path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        articles_ref = str(articles_path)
    config = {
        "kind": "kb_retrieval",
        "backbone": "minilm",
        "max_length": MAX_LENGTH,
        "dim": DIM,
        "k": DEFAULT_K,
        "text": "title, then body (models.kb.article_text)",
        "search": "exact cosine top-k (numpy matmul)",
        "articles": articles_ref,
        "ids": [a.id for a in articles],
        "hashes": [text_hash(t) for t in texts],
    }
    write_artifact(directory, config, {"E": vectors})
    return len(articles)

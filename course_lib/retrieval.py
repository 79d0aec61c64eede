"""Stage 1: broad recall.  A Chroma vector store, BM25, and a hybrid of the two.

Every retriever has ``retrieve(query, k) -> list[dict]``; each candidate is a new dict::

    {"id": str, "text": str, "metadata": dict, "score": float, "rank": int (from 1)}

Example
-------
>>> from course_lib.data import load_course_corpus
>>> from course_lib.retrieval import BM25Retriever
>>> ds = load_course_corpus()
>>> bm25 = BM25Retriever.from_corpus(ds.corpus)
>>> hits = bm25.retrieve("interest rate inflation central bank", k=3)
>>> [sorted(h) for h in hits][0]
['id', 'metadata', 'rank', 'score', 'text']
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from course_lib.data import document_text
from course_lib.fusion import rrf

try:  # chromadb is a dependency; keep import errors readable
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.utils.embedding_functions import register_embedding_function
except ImportError:  # pragma: no cover
    EmbeddingFunction = object  # type: ignore
    register_embedding_function = lambda c: c  # noqa: E731


class Retriever(Protocol):
    def retrieve(self, query: str, k: int = 50) -> list[dict]: ...


def _candidate(doc_id, text, metadata, score, rank) -> dict:
    return {"id": str(doc_id), "text": text, "metadata": dict(metadata or {}), "score": float(score), "rank": rank}


@register_embedding_function
class CourseEmbeddingFunction(EmbeddingFunction):
    """Chroma embedding function over a sentence-transformers bi-encoder (normalised vectors).

    Chroma's own default downloads a model at first use; the course always passes this one.
    """

    def __init__(self, model_name: str | None = None, embedder=None, batch_size: int = 64):
        from course_lib.models import load_embedder

        self.model_name = model_name
        self.embedder = embedder if embedder is not None else load_embedder(model_name)
        self.batch_size = batch_size

    def __call__(self, input: "Documents") -> "Embeddings":
        emb = self.embedder.encode(list(input), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return [np.asarray(e, dtype=np.float32) for e in emb]

    @staticmethod
    def name() -> str:
        return "course_lib"

    def get_config(self) -> dict:
        return {"model_name": self.model_name}

    @staticmethod
    def build_from_config(config: dict) -> "CourseEmbeddingFunction":
        return CourseEmbeddingFunction(config.get("model_name"))

    def default_space(self):
        return "cosine"


class ChromaStore:
    """A persistent Chroma collection with the course's embedder, in cosine space.

    Args:
        path: directory of the store (created if needed); reopening it reuses the vectors.
        collection: collection name.
        embedding_function: defaults to :class:`CourseEmbeddingFunction` (bundled MiniLM).

    Example::

        store = ChromaStore("./chroma_db")
        store.add_corpus(ds.corpus)          # idempotent: ids already stored are skipped
        store.retrieve("query", k=50)
    """

    def __init__(self, path, collection: str = "course", embedding_function=None):
        import chromadb
        from chromadb.config import Settings

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.client = chromadb.PersistentClient(path=str(self.path), settings=Settings(anonymized_telemetry=False))
        self.embedding_function = embedding_function or CourseEmbeddingFunction()
        self.collection = self.client.get_or_create_collection(
            collection,
            embedding_function=self.embedding_function,
            configuration={"hnsw": {"space": "cosine"}},
        )

    def __len__(self) -> int:
        return self.collection.count()

    def existing_ids(self, ids: list[str]) -> set[str]:
        found = set()
        for i in range(0, len(ids), 500):
            found.update(self.collection.get(ids=ids[i : i + 500], include=[])["ids"])
        return found

    def add_corpus(self, corpus: dict[str, dict], batch_size: int = 64, show_progress: bool = True, force: bool = False) -> int:
        """Embed and upsert documents (``id -> {"title", "text", **metadata}``); returns how many were embedded.

        Ids already in the store are skipped unless ``force``, so reopening and re-adding
        the same corpus costs no embedding.  Metadata keeps the title and every scalar field.
        """
        from tqdm.auto import tqdm

        ids = [str(d) for d in corpus]
        todo = ids if force else [d for d in ids if d not in self.existing_ids(ids)]
        for i in tqdm(range(0, len(todo), batch_size), desc="indexing", disable=not show_progress or not todo):
            chunk = todo[i : i + batch_size]
            metas = []
            for d in chunk:
                meta = {k: v for k, v in corpus[d].items() if k != "text" and isinstance(v, (str, int, float, bool))}
                metas.append(meta or {"title": ""})
            self.collection.upsert(ids=chunk, documents=[document_text(corpus[d]) for d in chunk], metadatas=metas)
        return len(todo)

    def retrieve(self, query: str, k: int = 50) -> list[dict]:
        """Top-``k`` by cosine similarity (``score`` = 1 - cosine distance)."""
        n = len(self)
        if n == 0:
            return []
        res = self.collection.query(query_texts=[query], n_results=min(k, n), include=["documents", "metadatas", "distances"])
        return [
            _candidate(i, doc, meta, 1.0 - dist, r)
            for r, (i, doc, meta, dist) in enumerate(
                zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0]), 1
            )
        ]


class DenseRetriever:
    """Exact dense retrieval over an in-memory :class:`course_lib.dense.DenseIndex`."""

    def __init__(self, corpus: dict[str, dict], index=None, embedder=None, cache_key: str | None = None, show_progress=False):
        from course_lib.dense import DenseIndex

        self.corpus = corpus
        self.index = index or DenseIndex.build(corpus, embedder, cache_key=cache_key, show_progress=show_progress)

    def retrieve(self, query: str, k: int = 50) -> list[dict]:
        hits = self.index.search([query], k)[0]
        return [self._cand(d, s, r) for r, (d, s) in enumerate(hits, 1)]

    def _cand(self, d, s, r):
        meta = {k: v for k, v in self.corpus[d].items() if k != "text"}
        return _candidate(d, document_text(self.corpus[d]), meta, s, r)


class BM25Retriever:
    """Okapi BM25 (the ``bm25s`` library) over titles and texts, lower-cased, English stopwords removed."""

    def __init__(self, corpus: dict[str, dict], k1: float = 0.9, b: float = 0.4):
        import bm25s

        self.corpus = corpus
        self.doc_ids = list(corpus)
        texts = [document_text(corpus[d]) for d in self.doc_ids]
        self._bm25s = bm25s
        self.model = bm25s.BM25(k1=k1, b=b)
        self.model.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        self._id_rank = None  # each document's place in id order (the tie-break), made on first search

    @classmethod
    def from_corpus(cls, corpus: dict[str, dict], **kw) -> "BM25Retriever":
        return cls(corpus, **kw)

    def search(self, queries: list[str], k: int = 100) -> list[list[tuple[str, float]]]:
        """Top-``k`` (doc_id, score) per query; documents scoring 0 are left out; ties go to the smaller doc id.

        The cut is a stable sort of every scoring document, so two copies of one passage at the k-th
        place are chosen alike on every CPU (``np.argpartition``, bm25s's own cut, may pick either).
        """
        if self._id_rank is None:
            self._id_rank = np.empty(len(self.doc_ids), dtype=np.int64)
            self._id_rank[np.argsort(np.array(self.doc_ids, dtype=object), kind="stable")] = np.arange(len(self.doc_ids))
        out = []
        for toks in self._bm25s.tokenize(list(queries), stopwords="en", show_progress=False, return_ids=False):
            ids = self.model.get_tokens_ids(list(toks))
            scores = self.model.get_scores_from_ids(ids) if ids else np.zeros(len(self.doc_ids))
            hit = np.flatnonzero(scores > 0)
            best = hit[np.lexsort((self._id_rank[hit], -scores[hit]))][:k]
            out.append([(self.doc_ids[i], float(scores[i])) for i in best])
        return out

    def retrieve(self, query: str, k: int = 50) -> list[dict]:
        hits = self.search([query], k)[0]
        return [
            _candidate(d, document_text(self.corpus[d]), {k2: v for k2, v in self.corpus[d].items() if k2 != "text"}, s, r)
            for r, (d, s) in enumerate(hits, 1)
        ]


class HybridRetriever:
    """Reciprocal-rank fusion of several retrievers (by default dense + BM25)."""

    def __init__(self, retrievers: list, rrf_k: int = 60, depth: int | None = None):
        if not retrievers:
            raise ValueError("HybridRetriever needs at least one retriever")
        self.retrievers = retrievers
        self.rrf_k = rrf_k
        self.depth = depth

    def retrieve(self, query: str, k: int = 50) -> list[dict]:
        depth = self.depth or k
        lists = [r.retrieve(query, depth) for r in self.retrievers]
        by_id = {}
        for lst in lists:
            for c in lst:
                by_id.setdefault(c["id"], c)
        fused = rrf([[c["id"] for c in lst] for lst in lists], k=self.rrf_k)
        order = sorted(fused, key=lambda d: (-fused[d], d))[:k]
        return [_candidate(d, by_id[d]["text"], by_id[d]["metadata"], fused[d], r) for r, d in enumerate(order, 1)]

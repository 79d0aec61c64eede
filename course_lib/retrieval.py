"""Stage 1: broad recall, behind one interface (:class:`FirstStage`).

Every first stage — exact dense (:class:`DenseRetriever`), a Chroma store (:class:`ChromaStore`),
BM25 (:class:`BM25Retriever`) and their reciprocal-rank fusion (:class:`HybridRetriever`) — has

* ``search(queries, k) -> [[(doc_id, score), ...], ...]`` — a batch of queries, best first;
* ``retrieve(query, k) -> list[dict]`` — one query's candidates, each a new dict::

    {"id": str, "text": str, "metadata": dict, "score": float, "rank": int (from 1)}

* ``run(queries, k) -> {qid: {doc_id: score}}`` — a TREC-style run (what :mod:`course_lib.runs` evaluates).

:func:`first_stage` builds one by name (``"dense"``, ``"bm25"``, ``"hybrid"``); the evaluation
runs, the pipeline and the HTTP service's ``/search`` all take one.  Hybrid fusion lives in
:class:`HybridRetriever` only.

Example
-------
>>> from course_lib.data import load_course_corpus
>>> from course_lib.retrieval import BM25Retriever
>>> ds = load_course_corpus()
>>> bm25 = BM25Retriever(ds.corpus)
>>> hits = bm25.retrieve("interest rate inflation central bank", k=3)
>>> [sorted(h) for h in hits][0]
['id', 'metadata', 'rank', 'score', 'text']
>>> bm25.search(["interest rate inflation central bank"], k=3)[0][0][0] == hits[0]["id"]
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from course_lib import metrics
from course_lib.data import document_text
from course_lib.fusion import rrf

try:  # chromadb is a dependency; keep import errors readable
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.utils.embedding_functions import register_embedding_function
except ImportError:  # pragma: no cover
    EmbeddingFunction = object  # type: ignore
    register_embedding_function = lambda c: c  # noqa: E731


__all__ = ["FirstStage", "DenseRetriever", "BM25Retriever", "HybridRetriever", "ChromaStore", "CourseEmbeddingFunction",
           "first_stage", "FIRST_STAGES"]

#: The first stages :func:`first_stage` builds by name.
FIRST_STAGES = ("dense", "bm25", "hybrid")


def _candidate(doc_id, text, metadata, score, rank) -> dict:
    return {"id": str(doc_id), "text": text, "metadata": dict(metadata or {}), "score": float(score), "rank": rank}


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    return k


class FirstStage(ABC):
    """The one first-stage interface.  Subclasses implement :meth:`search` (and :meth:`document`
    when they hold no ``corpus``); :meth:`retrieve` and :meth:`run` derive from it."""

    corpus: dict[str, dict] = {}

    @abstractmethod
    def search(self, queries: list[str], k: int = 100) -> list[list[tuple[str, float]]]:
        """Top-``k`` ``(doc_id, score)`` per query, best first."""

    def document(self, doc_id: str) -> tuple[str, dict]:
        """``(text, metadata)`` of a document this first stage can return."""
        doc = self.corpus[doc_id]
        return document_text(doc), {k: v for k, v in doc.items() if k != "text"}

    def retrieve(self, query: str, k: int = 50) -> list[dict]:
        """One query's top-``k`` candidates as new dicts (shape: module docstring)."""
        hits = self.search([query], _check_k(k))[0]
        return [_candidate(d, *self.document(d), s, r) for r, (d, s) in enumerate(hits, 1)]

    def run(self, queries: dict[str, str], k: int = 100) -> dict[str, dict[str, float]]:
        """``{qid: {doc_id: score}}`` for ``{qid: query text}``, searched as one batch (qids in sorted order)."""
        qids = sorted(queries)
        hits = self.search([queries[q] for q in qids], _check_k(k))
        return {q: dict(h) for q, h in zip(qids, hits)}


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


class ChromaStore(FirstStage):
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

    def search(self, queries: list[str], k: int = 100) -> list[list[tuple[str, float]]]:
        """Top-``k`` ``(doc_id, 1 - cosine distance)`` per query (Chroma's approximate HNSW search)."""
        n = len(self)
        if n == 0 or not queries:
            return [[] for _ in queries]
        res = self.collection.query(query_texts=list(queries), n_results=min(_check_k(k), n), include=["distances"])
        return [[(str(i), 1.0 - float(dist)) for i, dist in zip(ids, dists)] for ids, dists in zip(res["ids"], res["distances"])]

    def document(self, doc_id: str) -> tuple[str, dict]:
        got = self.collection.get(ids=[doc_id], include=["documents", "metadatas"])
        return got["documents"][0], dict(got["metadatas"][0] or {})

    def retrieve(self, query: str, k: int = 50) -> list[dict]:
        """Top-``k`` by cosine similarity (``score`` = 1 - cosine distance); one query to the store."""
        n = len(self)
        if n == 0:
            return []
        res = self.collection.query(query_texts=[query], n_results=min(_check_k(k), n), include=["documents", "metadatas", "distances"])
        return [
            _candidate(i, doc, meta, 1.0 - dist, r)
            for r, (i, doc, meta, dist) in enumerate(
                zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0]), 1
            )
        ]


class DenseRetriever(FirstStage):
    """Exact dense retrieval over an in-memory :class:`course_lib.dense.DenseIndex` (the same cosines
    on every CPU; query vectors read from the shipped query cache where present).

    Args:
        store_queries: add the vectors of new queries to the user's query cache (the evaluation runs do,
            so a notebook's queries can be shipped; interactive retrieval does not).
    """

    def __init__(self, corpus: dict[str, dict], index=None, embedder=None, cache_key: str | None = None,
                 show_progress=False, store_queries: bool = False):
        from course_lib.dense import DenseIndex

        self.corpus = corpus
        self.index = index or DenseIndex.build(corpus, embedder, cache_key=cache_key, show_progress=show_progress)
        self.show_progress = show_progress
        self.store_queries = store_queries

    def search(self, queries: list[str], k: int = 100) -> list[list[tuple[str, float]]]:
        from course_lib.dense import encode_queries

        vectors = encode_queries(list(queries), self.index.embedder, show_progress=self.show_progress,
                                 store=self.store_queries)
        return self.index.search_vectors(vectors, _check_k(k))


class BM25Retriever(FirstStage):
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

    def search(self, queries: list[str], k: int = 100) -> list[list[tuple[str, float]]]:
        """Top-``k`` (doc_id, score) per query; documents scoring 0 are left out; ties go to the smaller doc id.

        The cut is a stable sort of every scoring document, so two copies of one passage at the k-th
        place are chosen alike on every CPU (``np.argpartition``, bm25s's own cut, may pick either).
        """
        _check_k(k)
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


class HybridRetriever(FirstStage):
    """Reciprocal-rank fusion of several first stages (by default dense + BM25): the one place the
    course fuses first stages.

    Each first stage's top ``depth`` (default: ``k``) is ranked by score (ties: trec_eval order,
    :func:`course_lib.metrics.ranked`), fused with :func:`course_lib.fusion.rrf`, and cut to ``k``
    in the same order.
    """

    def __init__(self, retrievers: list, rrf_k: int = 60, depth: int | None = None):
        if not retrievers:
            raise ValueError("HybridRetriever needs at least one retriever")
        bad = [type(r).__name__ for r in retrievers if not isinstance(r, FirstStage)]
        if bad:
            raise TypeError(f"HybridRetriever fuses FirstStage retrievers, got {', '.join(bad)}")
        self.retrievers = list(retrievers)
        self.rrf_k = rrf_k
        self.depth = depth

    def search(self, queries: list[str], k: int = 100) -> list[list[tuple[str, float]]]:
        depth = self.depth or _check_k(k)
        per_stage = [r.search(list(queries), depth) for r in self.retrievers]
        out = []
        for lists in zip(*per_stage):
            fused = rrf([metrics.ranked(dict(hits)) for hits in lists], k=self.rrf_k)
            out.append([(d, fused[d]) for d in metrics.ranked(fused, k)])
        return out

    def document(self, doc_id: str) -> tuple[str, dict]:
        for r in self.retrievers:
            try:
                return r.document(doc_id)
            except (KeyError, IndexError):
                continue
        raise KeyError(doc_id)


def first_stage(corpus: dict[str, dict], kind: str = "dense", *, embedder=None, index=None, cache_key: str | None = None,
                show_progress: bool = False, store_queries: bool = False) -> FirstStage:
    """The first stage named ``kind`` (:data:`FIRST_STAGES`) over ``corpus``.

    ``"hybrid"`` fuses dense and BM25 (:class:`HybridRetriever`); the dense index is built once per corpus
    and cached on disk under ``cache_key`` (:mod:`course_lib.caches`), or ``index`` is used as given.
    """
    if kind not in FIRST_STAGES:
        raise ValueError(f"first stage must be one of {', '.join(FIRST_STAGES)}, got {kind!r}")

    def dense():
        return DenseRetriever(corpus, index=index, embedder=embedder, cache_key=cache_key, show_progress=show_progress,
                              store_queries=store_queries)

    if kind == "dense":
        return dense()
    if kind == "bm25":
        return BM25Retriever(corpus)
    return HybridRetriever([dense(), BM25Retriever(corpus)])

"""Exact dense retrieval in memory, with on-disk caches of corpus and query embeddings.

The course's vector *database* is Chroma (:mod:`course_lib.retrieval`); for evaluation over
thousands of queries an exact in-memory search over normalised embeddings is simpler,
faster and has no approximation error, so evaluation and training use this index.
Its embeddings are cached on disk by :mod:`course_lib.caches`.

**The same ranking on every CPU.** Two CPUs add floating-point numbers in different orders, so a
float32 matrix product gives two copies of one passage (MedQuAD holds many) scores that differ in
the seventh decimal, and which copy ranks first then depends on the machine.  This index computes
cosines *exactly*: both sides are rounded once to fixed point (22 fractional bits), and every
product and partial sum is then an integer below 2**53, which float64 holds exactly in any order.
Equal vectors get equal scores, and ties go to the earlier document, on any CPU.  Query vectors are
read from a cache where one exists (:func:`encode_queries`), so a shipped evaluation reads the same
vectors everywhere.

Example
-------
>>> from course_lib.data import load_course_corpus
>>> from course_lib.dense import DenseIndex
>>> ds = load_course_corpus()
>>> index = DenseIndex.build(ds.corpus, show_progress=False)
>>> hits = index.search(["How do vaccines train the immune system?"], k=3)[0]
>>> len(hits)
3
>>> twins = DenseIndex(["b", "a"], np.ones((2, 4), dtype=np.float32) / 2)
>>> twins.search_vectors(np.ones((1, 4), dtype=np.float32) / 2, k=1)   # a tie goes to the earlier document
[[('b', 1.0)]]
"""

from __future__ import annotations

import numpy as np

from course_lib.caches import QueryEmbeddingCache, embedding_file, load_embeddings, save_embeddings
from course_lib.data import document_text


def encode_texts(texts: list[str], embedder=None, batch_size: int = 64, show_progress: bool = True) -> np.ndarray:
    """L2-normalised float32 embeddings of ``texts`` (rows), sorted by length internally."""
    from course_lib.models import load_embedder

    embedder = embedder or load_embedder()
    emb = embedder.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=show_progress,
    )
    return np.asarray(emb, dtype=np.float32).reshape(len(texts), -1)


def encode_queries(texts: list[str], embedder=None, show_progress: bool = False, store: bool = True) -> np.ndarray:
    """Query embeddings, read from the query cache where present (:class:`~course_lib.caches.QueryEmbeddingCache`).

    The rest are embedded now (:func:`encode_texts`) and, with ``store``, added to the user cache.
    The shipped cache holds every query the notebooks evaluate, so their first stages rank alike
    on every CPU; a new query costs one forward pass, as before.
    """
    from course_lib.models import load_embedder

    embedder = embedder or load_embedder()
    texts = list(texts)
    cache = QueryEmbeddingCache.for_embedder(embedder)
    found = [cache.get(t) for t in texts]
    todo = sorted({t for t, v in zip(texts, found) if v is None})
    if todo:
        fresh = dict(zip(todo, encode_texts(todo, embedder, show_progress=show_progress)))
        if store:
            cache.put_many(fresh)
            cache.save()
        found = [fresh[t] if v is None else v for t, v in zip(texts, found)]
    if not texts:
        return np.zeros((0, embedder.get_sentence_embedding_dimension() or 0), dtype=np.float32)
    return np.stack(found).astype(np.float32)


def _fixed_point(x: np.ndarray, bits: int) -> np.ndarray:
    return np.rint(np.asarray(x, dtype=np.float64) * float(2**bits))


def exact_cosines(query_emb: np.ndarray, doc_fixed: np.ndarray, bits: int) -> np.ndarray:
    """``query_emb @ docs.T`` computed exactly from fixed-point copies (``doc_fixed`` from :class:`DenseIndex`)."""
    q = _fixed_point(np.atleast_2d(query_emb), bits)
    return (q @ doc_fixed.T) / float(2 ** (2 * bits))


def top_k(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, best first, ties to the lower index — the same on every CPU.

    (``np.argpartition`` alone may pick either of two equal values at the cut, depending on the CPU's
    sorting code; here every value equal to the k-th is kept, then the order is a stable sort.)

    >>> top_k(np.array([0.5, 0.9, 0.5, 0.1]), 2).tolist()
    [1, 0]
    """
    n = len(row)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        kth = np.partition(row, n - k)[n - k]
        cand = np.flatnonzero(row >= kth)
    else:
        cand = np.arange(n)
    return cand[np.lexsort((cand, -row[cand]))][:k]


class DenseIndex:
    """Exact cosine search over a fixed set of documents.

    Attributes:
        doc_ids: list of document ids, row-aligned with ``embeddings``.
        embeddings: ``(n_docs, dim)`` float32, L2-normalised.
    """

    def __init__(self, doc_ids: list[str], embeddings: np.ndarray, embedder=None):
        if len(doc_ids) != len(embeddings):
            raise ValueError("doc_ids and embeddings differ in length")
        self.doc_ids = list(doc_ids)
        self.embeddings = embeddings
        self.embedder = embedder
        dim = embeddings.shape[1] if embeddings.ndim == 2 else 1
        # |products| <= 2**(2 * bits) and dim of them sum below 2**53: integers float64 holds exactly
        self.bits = (53 - int(np.ceil(np.log2(max(dim, 2))))) // 2   # 22 for MiniLM's 384 dimensions
        self._fixed = None
        self._pos = None

    @property
    def fixed(self) -> np.ndarray:
        """The documents' fixed-point copy (float64 integers), made on first use."""
        if self._fixed is None:
            self._fixed = _fixed_point(self.embeddings, self.bits)
        return self._fixed

    @classmethod
    def build(cls, corpus: dict[str, dict], embedder=None, cache_key: str | None = None, show_progress: bool = True):
        """Embed a corpus (``doc_id -> {"title", "text"}``), reusing a cached copy when ``cache_key`` matches."""
        from course_lib.models import load_embedder

        embedder = embedder or load_embedder()
        doc_ids = list(corpus)
        name = embedding_file(cache_key, corpus, embedder) if cache_key is not None else None
        if name is not None:
            emb = load_embeddings(name, len(doc_ids))
            if emb is not None:
                return cls(doc_ids, emb, embedder)
        emb = encode_texts([document_text(corpus[d]) for d in doc_ids], embedder, show_progress=show_progress)
        if name is not None:
            emb = save_embeddings(name, emb)
        return cls(doc_ids, emb, embedder)

    def search_vectors(self, query_emb: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Top-``k`` (doc_id, cosine) per query vector, best first; ties broken by doc order."""
        out = []
        query_emb = np.atleast_2d(query_emb)
        for start in range(0, len(query_emb), 256):  # bounded memory on large corpora
            sims = exact_cosines(query_emb[start : start + 256], self.fixed, self.bits)
            for row in sims:
                out.append([(self.doc_ids[i], float(row[i])) for i in top_k(row, k)])
        return out

    def search(self, queries: list[str], k: int = 100, show_progress: bool = False):
        """Top-``k`` (doc_id, cosine) for each query text (query vectors read from the query cache where present)."""
        return self.search_vectors(encode_queries(queries, self.embedder, show_progress=show_progress, store=False), k)

    def similarity(self, query_emb: np.ndarray, doc_ids: list[str]) -> np.ndarray:
        """Cosine between one query vector and the given documents (exact, as in :meth:`search_vectors`)."""
        if self._pos is None:
            self._pos = {d: i for i, d in enumerate(self.doc_ids)}
        return exact_cosines(query_emb, self.fixed[[self._pos[d] for d in doc_ids]], self.bits)[0]

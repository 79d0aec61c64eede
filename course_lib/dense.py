"""Exact dense retrieval in memory, with an on-disk cache of corpus embeddings.

The course's vector *database* is Chroma (:mod:`course_lib.retrieval`); for evaluation over
thousands of queries an exact in-memory search over normalised embeddings is simpler,
faster and has no approximation error, so evaluation and training use this index.
Its embeddings are cached on disk by :mod:`course_lib.caches`.

Example
-------
>>> from course_lib.data import load_course_corpus
>>> from course_lib.dense import DenseIndex
>>> ds = load_course_corpus()
>>> index = DenseIndex.build(ds.corpus, show_progress=False)
>>> hits = index.search(["How do vaccines train the immune system?"], k=3)[0]
>>> len(hits)
3
"""

from __future__ import annotations

import numpy as np

from course_lib.caches import embedding_file, load_embeddings, save_embeddings
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
    return np.asarray(emb, dtype=np.float32)


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
        k = min(k, len(self.doc_ids))
        sims = query_emb @ self.embeddings.T
        out = []
        for row in sims:
            top = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
            top = top[np.lexsort((top, -row[top]))]
            out.append([(self.doc_ids[i], float(row[i])) for i in top])
        return out

    def search(self, queries: list[str], k: int = 100, show_progress: bool = False):
        """Top-``k`` (doc_id, cosine) for each query text."""
        q = encode_texts(queries, self.embedder, show_progress=show_progress)
        return self.search_vectors(q, k)

    def similarity(self, query_emb: np.ndarray, doc_ids: list[str]) -> np.ndarray:
        """Cosine between one query vector and the given documents."""
        pos = {d: i for i, d in enumerate(self.doc_ids)}
        return self.embeddings[[pos[d] for d in doc_ids]] @ query_emb

"""Exact dense retrieval in memory, with an on-disk cache of corpus embeddings.

The course's vector *database* is Chroma (:mod:`course_lib.retrieval`); for evaluation over
thousands of queries an exact in-memory search over normalised embeddings is simpler,
faster and has no approximation error, so evaluation and training use this index.

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

import hashlib
import os
from pathlib import Path

import numpy as np

from course_lib.data import document_text


def cache_dir() -> Path:
    """``$COURSE_CACHE_DIR`` or ``~/.cache/course_lib`` (created on demand)."""
    p = Path(os.environ.get("COURSE_CACHE_DIR") or Path.home() / ".cache" / "course_lib")
    p.mkdir(parents=True, exist_ok=True)
    return p


def seed_dirs() -> list[Path]:
    """Read-only caches shipped with a checkout of the course (``eval_cache/`` at the repo root).

    They hold what is slow to recompute on a laptop and deterministic given the models:
    corpus embeddings of the benchmark collections (a persisted vector index, in effect) and
    the course reranker's scores on their evaluation candidates.  Tests recompute samples of
    both and compare.  ``$COURSE_SEED_CACHE`` adds another folder.
    """
    dirs = []
    if os.environ.get("COURSE_SEED_CACHE"):
        dirs.append(Path(os.environ["COURSE_SEED_CACHE"]))
    repo = Path(__file__).resolve().parents[1] / "eval_cache"
    if repo.is_dir():
        dirs.append(repo)
    return dirs


def find_cached(name: str) -> Path | None:
    """The first of ``cache_dir()/name`` and ``<seed cache>/name`` that exists (``name`` may hold a subfolder)."""
    for base in [cache_dir(), *seed_dirs()]:
        if (base / name).is_file():
            return base / name
    return None


def _fingerprint(*parts) -> str:
    h = hashlib.sha1()
    for part in parts:
        h.update(str(part).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def corpus_fingerprint(corpus: dict[str, dict]) -> str:
    """A content hash of a corpus (ids and texts), the same wherever the files live."""
    h = hashlib.sha1()
    for d, doc in corpus.items():
        h.update(d.encode("utf-8"))
        h.update(document_text(doc).encode("utf-8"))
    return h.hexdigest()[:16]


def embedder_fingerprint(embedder) -> str:
    """A content hash of a sentence-transformers model (weights sample + settings), path-independent."""
    import torch

    h = hashlib.sha1(str(embedder.max_seq_length).encode())
    with torch.no_grad():
        for i, p in enumerate(embedder.parameters()):
            h.update(p.detach().float().cpu().numpy().ravel()[:256].tobytes())
            if i > 8:
                break
    return h.hexdigest()[:16]


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
        path = None
        if cache_key is not None:
            key = _fingerprint(cache_key, corpus_fingerprint(corpus), embedder_fingerprint(embedder))
            path = cache_dir() / f"emb-{key}.npy"
            found = find_cached(path.name)
            if found is not None:
                emb = np.load(found).astype(np.float32)
                if emb.shape[0] == len(doc_ids):
                    return cls(doc_ids, emb, embedder)
        emb = encode_texts([document_text(corpus[d]) for d in doc_ids], embedder, show_progress=show_progress)
        if path is not None:
            # stored (and always used) at float16: half the size, and the same numbers whether
            # an index was computed here or read from a cache
            emb = emb.astype(np.float16)
            np.save(path, emb)
            emb = emb.astype(np.float32)
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

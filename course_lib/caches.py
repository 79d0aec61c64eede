"""Every cache the course keeps, in one place, each keyed by what makes its values true.

* **Folders.** :func:`cache_dir` (``$COURSE_CACHE_DIR`` or ``~/.cache/course_lib``) is written;
  :func:`seed_dirs` are read-only caches shipped with a checkout (``eval_cache/``), holding what
  is slow to recompute on a laptop CPU and fixed given the models.
* **Dense embeddings** of a corpus (:func:`load_embeddings` / :func:`save_embeddings`), keyed by
  the collection's name, the corpus contents and the bi-encoder's weights.
* **Query embeddings** (:class:`QueryEmbeddingCache`), keyed by the query text and the bi-encoder's
  weights: the shipped file makes the first stage of every evaluated query the same on every CPU.
* **Cross-encoder scores on disk** (:class:`ScoreCache`): (query text, doc id) -> logit, one file per
  (scorer fingerprint, collection).  The fingerprint is :meth:`course_lib.scorers.Scorer.fingerprint`
  — a hash of the weights *in memory*, so a model fine-tuned in this process never reads the
  scores of the model it started from.  A scorer without a fingerprint is never disk-cached.
* **Pair scores in memory** (:class:`LRUScoreCache`): an LRU keyed by (scorer fingerprint, query,
  passage text) — never by the query alone.

This is the storage layer: it imports no scorer.  The scorers that read and write these stores
(:class:`~course_lib.scorers.cached.CachedScorer`, :class:`~course_lib.scorers.cached.CollectionScorer`)
live in :mod:`course_lib.scorers.cached`.

Example
-------
>>> cache = LRUScoreCache(maxsize=2, model_id="m")
>>> cache.put("q", "a", 1.5); cache.get("q", "a"), cache.get("q", "b")
(1.5, None)
>>> cache.hits, cache.misses
(1, 1)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from course_lib import settings



# -- folders ----------------------------------------------------------------------------------
def cache_dir() -> Path:
    """``$COURSE_CACHE_DIR`` or ``~/.cache/course_lib`` (created on demand)."""
    return settings.cache_dir()


def seed_dirs() -> list[Path]:
    """Read-only caches shipped with a checkout of the course (``eval_cache/`` at the repo root).

    They hold what is slow to recompute on a laptop and deterministic given the models:
    corpus embeddings of the benchmark collections (a persisted vector index, in effect) and
    the course reranker's scores on their evaluation candidates.  Tests recompute samples of
    both and compare.  ``$COURSE_SEED_CACHE`` adds another folder.
    """
    dirs = []
    if settings.seed_cache() is not None:
        dirs.append(settings.seed_cache())
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


def fingerprint(*parts) -> str:
    """A short hash of the parts' string forms (a cache key)."""
    h = hashlib.sha1()
    for part in parts:
        h.update(str(part).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


# -- dense embeddings -------------------------------------------------------------------------
def corpus_fingerprint(corpus: dict[str, dict]) -> str:
    """A content hash of a corpus (ids and texts), the same wherever the files live."""
    from course_lib.data import document_text

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


def embedding_file(cache_key: str, corpus: dict[str, dict], embedder) -> str:
    """The file name of a corpus's cached embeddings (``emb-<hash>.npy``)."""
    return f"emb-{fingerprint(cache_key, corpus_fingerprint(corpus), embedder_fingerprint(embedder))}.npy"


def load_embeddings(name: str, n_rows: int) -> np.ndarray | None:
    """Cached embeddings ``name`` (from :func:`embedding_file`) as float32, or None (absent or wrong size)."""
    found = find_cached(name)
    if found is None:
        return None
    emb = np.load(found).astype(np.float32)
    return emb if emb.shape[0] == n_rows else None


def save_embeddings(name: str, emb: np.ndarray) -> np.ndarray:
    """Store at float16 (half the size) and return what was stored, as float32.

    An index then holds the same numbers whether it was computed here or read from a cache.
    """
    half = np.asarray(emb).astype(np.float16)
    np.save(cache_dir() / name, half)
    return half.astype(np.float32)


# -- query embeddings -------------------------------------------------------------------------
class QueryEmbeddingCache:
    """query text -> bi-encoder embedding, one file per bi-encoder (``queries/<embedder fingerprint>.npz``).

    Read from the user cache and the shipped caches (the user's entries first); :meth:`save` writes
    the user's.  The shipped file holds every query the notebooks evaluate, so their first stages
    read the same vectors on every CPU (a forward pass differs in the seventh decimal between CPUs).
    Use :meth:`for_embedder`; :func:`course_lib.dense.encode_queries` is the usual way in.

    >>> import numpy as np, os, tempfile
    >>> os.environ["COURSE_CACHE_DIR"] = tempfile.mkdtemp()
    >>> c = QueryEmbeddingCache("demo")
    >>> c.put_many({"what is BM25?": np.ones(3, dtype=np.float32)}); c.save()
    >>> QueryEmbeddingCache("demo").get("what is BM25?").tolist(), QueryEmbeddingCache("demo").get("new")
    ([1.0, 1.0, 1.0], None)
    """

    _loaded: dict[tuple[str, float], dict[str, np.ndarray]] = {}

    def __init__(self, embedder_fp: str):
        self.name = f"queries/{embedder_fp}.npz"
        self.path = cache_dir() / self.name
        self.data: dict[str, np.ndarray] = {}
        for base in [*reversed(seed_dirs()), cache_dir()]:  # later folders win: the user's own entries last
            self.data.update(self.read(base / self.name))
        self._new: dict[str, np.ndarray] = {}

    @classmethod
    def for_embedder(cls, embedder) -> "QueryEmbeddingCache":
        fp = getattr(embedder, "_course_fingerprint", None)
        if fp is None:
            fp = embedder_fingerprint(embedder)
            try:
                embedder._course_fingerprint = fp
            except AttributeError:  # pragma: no cover - an object that refuses attributes
                pass
        return cls(fp)

    @classmethod
    def read(cls, path: Path) -> dict[str, np.ndarray]:
        """``{text: vector}`` of one cache file (empty when absent); read once per file version."""
        path = Path(path)
        if not path.is_file():
            return {}
        key = (str(path), path.stat().st_mtime)
        if key not in cls._loaded:
            for old in [k for k in cls._loaded if k[0] == key[0]]:  # keep only a file's latest version
                del cls._loaded[old]
            with np.load(path) as z:
                cls._loaded[key] = dict(zip(z["texts"].tolist(), z["vectors"]))
        return cls._loaded[key]

    @staticmethod
    def write(path: Path, vectors: dict[str, np.ndarray]) -> None:
        """Write ``{text: vector}`` to ``path`` (texts sorted, so the file is the same for the same content)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        texts = sorted(vectors)
        tmp = path.with_suffix(".part.npz")
        np.savez_compressed(tmp, texts=np.array(texts), vectors=np.stack([np.asarray(vectors[t], np.float32) for t in texts]))
        tmp.replace(path)

    def get(self, text: str):
        return self.data.get(text)

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        for text, v in vectors.items():
            v = np.asarray(v, dtype=np.float32)
            self.data[text] = v
            self._new[text] = v

    def __len__(self) -> int:
        return len(self.data)

    def save(self) -> None:
        """Add this object's new entries to the user cache's file."""
        if self._new:
            self.write(self.path, {**self.read(self.path), **self._new})
            self._new = {}


# -- cross-encoder scores on disk -------------------------------------------------------------
class ScoreCache:
    """(query text, doc id) -> logit, stored as gzipped JSON per (scorer fingerprint, collection).

    Use :meth:`for_scorer`; it returns None for a scorer without a fingerprint (never cached).
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.data: dict[str, dict[str, float]] = {}
        found = find_cached(f"{path.parent.name}/{path.name}") if path is not None else None
        if found is not None:
            with gzip.open(found, "rt", encoding="utf-8") as fh:
                self.data = json.load(fh)

    @classmethod
    def for_fingerprint(cls, fingerprint: str, collection: str) -> "ScoreCache":
        """The cache of the model named ``fingerprint`` on ``collection`` (shipped scores read, new ones written
        to :func:`cache_dir`)."""
        return cls(cache_dir() / "scores" / f"{fingerprint}-{collection}.json.gz")

    @classmethod
    def for_scorer(cls, scorer, collection: str) -> "ScoreCache | None":
        fp = scorer.fingerprint()
        return None if fp is None else cls.for_fingerprint(fp, collection)

    def get(self, query: str, doc_id: str):
        return self.data.get(query, {}).get(doc_id)

    def put(self, query: str, doc_id: str, logit: float) -> None:
        self.data.setdefault(query, {})[doc_id] = float(logit)

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(self.path, "wt", encoding="utf-8") as fh:
                json.dump(self.data, fh)


# -- pair scores in memory --------------------------------------------------------------------
class LRUScoreCache:
    """LRU (and optional TTL) cache of logits keyed by (model id, query, passage text).

    Keyed on the *pair*: the course's sample service cached results per query, so a second
    request with different candidates got the first request's answer.  Thread-safe; ``hits``
    and ``misses`` count lookups.

    Args:
        maxsize: pairs kept; the least recently used goes first.
        model_id: part of every key (use the scorer's fingerprint).
        ttl_s: seconds an entry stays valid (None = forever).
    """

    def __init__(self, maxsize: int = 10_000, model_id: str = "", ttl_s: float | None = None, clock=time.monotonic):
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self.model_id = model_id
        self.ttl_s = ttl_s
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def key(self, query: str, text: str) -> str:
        return hashlib.sha1(f"{self.model_id}\0{query}\0{text}".encode("utf-8")).hexdigest()

    def get(self, query: str, text: str):
        k = self.key(query, text)
        with self._lock:
            item = self._data.get(k)
            if item is not None and self.ttl_s is not None and self._clock() - item[1] > self.ttl_s:
                del self._data[k]
                item = None
            if item is None:
                self.misses += 1
                return None
            self._data.move_to_end(k)
            self.hits += 1
            return item[0]

    def peek(self, query: str, text: str):
        """Like :meth:`get` but counts nothing (a miss here is looked up again later)."""
        k = self.key(query, text)
        with self._lock:
            item = self._data.get(k)
            if item is None or (self.ttl_s is not None and self._clock() - item[1] > self.ttl_s):
                return None
            self._data.move_to_end(k)
            return item[0]

    def put(self, query: str, text: str, logit: float) -> None:
        k = self.key(query, text)
        with self._lock:
            self._data[k] = (float(logit), self._clock())
            self._data.move_to_end(k)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

"""Scorers that remember: :class:`CachedScorer` (pair scores in memory) and :class:`CollectionScorer`
(one collection's scores on disk, the file ``course-lib eval`` uses).  The stores themselves
(:class:`~course_lib.caches.LRUScoreCache`, :class:`~course_lib.caches.ScoreCache`) live in
:mod:`course_lib.caches`, which knows nothing of scorers.

Example
-------
>>> from course_lib.caches import LRUScoreCache
>>> from course_lib.scorers.base import Scorer
>>> class Counting(Scorer):
...     calls = 0
...     def score_pairs(self, pairs):
...         Counting.calls += len(pairs)
...         return np.ones(len(pairs))
>>> cached = CachedScorer(Counting(), LRUScoreCache(model_id="demo"))
>>> _ = cached.score("q", ["a", "b"]); _ = cached.score("q", ["a", "c"])
>>> Counting.calls, cached.cache.hits
(3, 1)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from course_lib.caches import LRUScoreCache, ScoreCache
from course_lib.calibration import Calibration
from course_lib.scorers.base import Scorer, WrappingScorer, require_scorer

__all__ = ["CachedScorer", "CollectionScorer"]


class CachedScorer(WrappingScorer):
    """A :class:`~course_lib.scorers.base.Scorer` that scores only the pairs its
    :class:`~course_lib.caches.LRUScoreCache` misses.

    The cache's ``model_id`` is set to the wrapped scorer's fingerprint when left empty.
    """

    def __init__(self, scorer: Scorer, cache: LRUScoreCache | None = None):
        super().__init__(scorer)
        self.cache = cache if cache is not None else LRUScoreCache()
        if not self.cache.model_id:
            self.cache.model_id = scorer.fingerprint() or f"unnamed-{id(scorer)}"

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        out = np.empty(len(pairs), dtype=np.float32)
        todo = []
        for i, (q, t) in enumerate(pairs):
            v = self.cache.get(q, t)
            if v is None:
                todo.append(i)
            else:
                out[i] = v
        if todo:
            fresh = self.scorer.score_pairs([pairs[i] for i in todo])
            for i, v in zip(todo, fresh):
                out[i] = v
                self.cache.put(pairs[i][0], pairs[i][1], float(v))
        return out


class CollectionScorer(Scorer):
    """A :class:`~course_lib.scorers.base.Scorer` for passages of one collection that reads and writes its
    on-disk :class:`~course_lib.caches.ScoreCache` — the same file ``course-lib eval`` uses.

    Domain systems score (query, passage text) pairs; this maps each text back to its doc id
    (``ds.doc_text``) and looks the pair up by (query text, doc id).  A miss is scored by
    ``scorer`` and stored (call :meth:`save`, or use it as a context manager).  With
    ``scorer=None`` only cached pairs can be scored — for scores shipped for a model that is not
    on this machine (``fingerprint`` names it) — and a miss is a clear error.

    Args:
        scorer: the model (None: cached scores only; then ``fingerprint`` is required).
        ds: the collection (its ``name`` picks the cache file; its corpus maps texts to ids).
        fingerprint: the model's fingerprint (default: ``scorer.fingerprint()``).
        calibration: logit -> probability map (default: the scorer's, else a sigmoid).
    """

    def __init__(self, scorer: Scorer | None, ds, fingerprint: str | None = None, calibration=None):
        require_scorer(scorer, optional=True)
        fp = fingerprint or (scorer.fingerprint() if scorer is not None else None)
        if not fp:
            raise ValueError("a cached-only scorer needs the model's fingerprint")
        self.scorer = scorer
        self._fingerprint = fp
        self.collection = ds.name
        self.cache = ScoreCache.for_fingerprint(fp, ds.name)
        self.calibration = calibration or (scorer.calibration if scorer is not None else Calibration())
        self._ids: dict[str, list[str]] = {}
        for d in ds.corpus:
            self._ids.setdefault(ds.doc_text(d), []).append(d)
        self.hits = self.misses = 0
        self._dirty = False
        self._unsaved = 0

    def _lookup(self, query: str, text: str):
        for d in self._ids.get(text, ()):
            v = self.cache.get(query, d)
            if v is not None:
                return v
        return None

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        out = np.empty(len(pairs), dtype=np.float32)
        todo = []
        for i, (q, t) in enumerate(pairs):
            v = self._lookup(q, t)
            if v is None:
                todo.append(i)
            else:
                out[i] = v
        self.hits += len(pairs) - len(todo)
        self.misses += len(todo)
        if todo:
            if self.scorer is None:
                q, t = pairs[todo[0]]
                raise KeyError(f"{len(todo)} pair(s) not in the shipped scores of model {self._fingerprint} on "
                               f"{self.collection!r} (first: query {q[:60]!r}); load the model to score new pairs")
            fresh = self.scorer.score_pairs([pairs[i] for i in todo])
            for i, v in zip(todo, fresh):
                out[i] = v
                q, t = pairs[i]
                ids = self._ids.get(t)
                if ids:  # a text outside the collection is scored, not stored
                    self.cache.put(q, ids[0], float(v))
                    self._dirty = True
                    self._unsaved += 1
            if self._unsaved >= 500:  # long runs keep what they scored if interrupted
                self.save()
        return out

    def save(self) -> None:
        """Write new scores to the user cache (:func:`course_lib.caches.cache_dir`)."""
        if self._dirty:
            self.cache.save()
            self._dirty = False
            self._unsaved = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.save()

    def probabilities(self, logits) -> np.ndarray:
        return self.calibration.probabilities(logits)

    def fingerprint(self) -> str:
        return self._fingerprint

"""The scoring primitive and the one way from logits to results.

* :class:`Scorer` — turns (query, passage) pairs into raw logits (:meth:`Scorer.score_pairs`);
  :meth:`~Scorer.score` and :meth:`~Scorer.probabilities` derive from it, and
  :meth:`~Scorer.fingerprint` names the scoring function for caches.  Every scorer of the course
  (``course_lib.scorers``) and every test double is one, and everything that ranks takes one.
* :class:`WrappingScorer` — the base of scorers that delegate to another (cached, delayed, token
  budget): calibration, probabilities and fingerprint are the wrapped scorer's unless overridden.
* :func:`rank_results` — the one function that sorts (stably), thresholds and builds result
  dicts; every ranker in the course calls it.  The result shape is documented there.
* :func:`validate_query`, :func:`validate_rank_args`, :func:`validate_candidates` and
  :func:`require_scorer` — the checks every public entry point runs before any work.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from course_lib.calibration import Calibration

__all__ = ["Scorer", "WrappingScorer", "Ranker", "ScoringStats", "require_scorer", "validate_query",
           "validate_rank_args", "validate_candidates", "confidence_band", "rank_results"]


# -- the protocol -----------------------------------------------------------------------------
class Scorer(ABC):
    """Turns (query, passage) pairs into relevance logits.  Subclasses implement :meth:`score_pairs`.

    Attributes:
        calibration: maps logits to probabilities (default: the plain sigmoid, which is
            calibrated for the course reranker because its head has the fitted Platt
            parameters folded in).

    Example
    -------
    >>> class WordOverlap(Scorer):
    ...     def score_pairs(self, pairs):
    ...         return np.array([len(set(q.split()) & set(t.split())) - 1.0 for q, t in pairs])
    >>> WordOverlap().score("red apple", ["a red apple", "a pear"]).tolist()
    [1.0, -1.0]
    """

    calibration: Calibration = Calibration()

    @abstractmethod
    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw logits, one per (query, passage) pair, in input order (higher = more relevant)."""

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Logits of one query against several passages."""
        return np.asarray(self.score_pairs([(query, t) for t in texts]), dtype=np.float32)

    def probabilities(self, logits) -> np.ndarray:
        """Logits mapped to probabilities of relevance in [0, 1]."""
        return self.calibration.probabilities(logits)

    def fingerprint(self) -> str | None:
        """A stable id of the scoring function (weights and settings), or None if it has none.

        Caches key on it; a scorer without a fingerprint is never served cached scores.
        """
        return None

    def configured(self, **settings) -> "Scorer":
        """A scorer like this one with other settings.  Performance hints (``batch_size``) that a
        scorer has no use for are ignored; anything else it does not know is an error."""
        unknown = set(settings) - {"batch_size"}
        if unknown:
            raise TypeError(f"{type(self).__name__} has no setting(s) {sorted(unknown)}")
        return self



def require_scorer(scorer, name: str = "scorer", *, optional: bool = False):
    """``scorer`` if it is a :class:`Scorer` (or None when ``optional``); else a clear error.

    >>> require_scorer(None, optional=True) is None
    True
    """
    if scorer is None and optional:
        return None
    if not isinstance(scorer, Scorer):
        kind = "a course_lib.scorers.Scorer" + (" or None" if optional else "")
        raise TypeError(f"{name} must be {kind}, got {type(scorer).__name__}")
    return scorer


class WrappingScorer(Scorer):
    """A :class:`Scorer` that delegates to another (``self.scorer``): by default it scores, maps
    logits to probabilities and names itself exactly as the wrapped scorer does.  Subclasses
    override what they change.

    >>> class Shifted(WrappingScorer):
    ...     def score_pairs(self, pairs):
    ...         return self.scorer.score_pairs(pairs) + 1.0
    >>> class Zero(Scorer):
    ...     def score_pairs(self, pairs):
    ...         return np.zeros(len(pairs))
    >>> Shifted(Zero()).score("q", ["a", "b"]).tolist()
    [1.0, 1.0]
    """

    def __init__(self, scorer: Scorer, name: str = "scorer"):
        self.scorer = require_scorer(scorer, name)
        self.calibration = scorer.calibration

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return self.scorer.score_pairs(pairs)

    def probabilities(self, logits) -> np.ndarray:
        return self.scorer.probabilities(logits)

    def fingerprint(self) -> str | None:
        return self.scorer.fingerprint()


@dataclass
class ScoringStats:
    """What the last scoring call did: pairs scored, pairs truncated, queries capped, windows."""

    pairs: int = 0
    truncated: int = 0
    queries_capped: int = 0
    windows: int = 0


@runtime_checkable
class Ranker(Protocol):
    """Anything that reranks one query's candidates into result dicts (see :func:`rank_results`)."""

    def rerank_with_confidence(self, query: str, candidates: list[dict], top_k: int | None = 10,
                               score_threshold: float = 0.5) -> list[dict]: ...


# -- input checks (every public entry point calls them before any work) ---------------------
def validate_query(query, name: str = "query") -> str:
    """``query`` if it is a string with some non-space text; else a clear error."""
    if not isinstance(query, str):
        raise TypeError(f"{name} must be a str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return query


def validate_rank_args(top_k, score_threshold) -> None:
    """``top_k``: None or an int >= 0; ``score_threshold``: a probability in [0, 1]."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, Integral)):
        raise TypeError(f"top_k must be an int or None, got {type(top_k).__name__}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if isinstance(score_threshold, bool) or not isinstance(score_threshold, Real):
        raise TypeError(f"score_threshold must be a number, got {type(score_threshold).__name__}")
    if not 0.0 <= float(score_threshold) <= 1.0:
        raise ValueError(f"score_threshold is a probability and must lie in [0, 1], got {score_threshold}")


def validate_candidates(candidates, name: str = "candidates") -> None:
    """Each candidate must be a dict with a string ``"text"``; ids (``"id"``), when present, unique."""
    if not isinstance(candidates, (list, tuple)):
        raise TypeError(f"{name} must be a list of dicts, got {type(candidates).__name__}")
    seen = set()
    for i, c in enumerate(candidates):
        if not isinstance(c, dict):
            raise TypeError(f"{name}[{i}] is a {type(c).__name__}, expected a dict with a 'text' key")
        if "text" not in c:
            raise ValueError(f"{name}[{i}] has no 'text' key (keys: {sorted(c)[:5]})")
        if not isinstance(c["text"], str):
            raise TypeError(f"{name}[{i}]: 'text' must be a str, got {type(c['text']).__name__}")
        if "id" in c:
            if c["id"] in seen:
                raise ValueError(f"duplicate candidate id {c['id']!r} ({name}[{i}])")
            seen.add(c["id"])


# -- the one way from logits to results -------------------------------------------------------
def confidence_band(p: float, bands: tuple[float, float] = (0.8, 0.5)) -> str:
    """``"high"`` at or above ``bands[0]``, ``"medium"`` at or above ``bands[1]``, else ``"low"``."""
    return "high" if p >= bands[0] else "medium" if p >= bands[1] else "low"


def rank_results(
    candidates: Sequence[dict],
    logits,
    probabilities,
    *,
    top_k: int | None = None,
    score_threshold: float = 0.0,
    order_by=None,
    bands: tuple[float, float] = (0.8, 0.5),
) -> list[dict]:
    """Sort candidates by score, drop those below a probability threshold, cut to ``top_k``.

    Every ranker in the course builds its results here, so they all have one shape: a **new**
    dict per kept candidate (the caller's dicts are never changed), best first, holding the
    candidate's own keys plus

    ==================== ===============================================================
    ``relevance_score``  calibrated probability of relevance (what thresholds apply to)
    ``logit``            the scorer's raw logit
    ``confidence``       ``"high"`` / ``"medium"`` / ``"low"`` by ``bands`` on the probability
    ``original_position`` index of the candidate in the caller's list (from 0)
    ``reranked_position`` rank among *all* candidates after sorting, before the threshold
                         and the cut (from 0)
    ==================== ===============================================================

    Args:
        order_by: the scores to sort by, higher first (default: ``logits``; the pipeline passes
            its fused scores).  Ties keep input order (a stable sort).
        score_threshold: drop results whose probability is below it (0 keeps everything).

    >>> rank_results([{"id": "a", "text": ""}, {"id": "b", "text": ""}], [0.0, 2.0], [0.5, 0.88],
    ...              score_threshold=0.6)[0]["id"]
    'b'
    """
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    keys = logits if order_by is None else np.asarray(order_by, dtype=np.float64).reshape(-1)
    if not (len(candidates) == len(logits) == len(probs) == len(keys)):
        raise ValueError(f"{len(candidates)} candidates but {len(logits)} logits / {len(probs)} probabilities")
    order = sorted(range(len(candidates)), key=lambda i: (-keys[i], i))
    out = []
    for new_pos, i in enumerate(order):
        p = float(probs[i])
        if p < score_threshold:
            continue
        rec = dict(candidates[i])
        rec.update(
            relevance_score=p,
            logit=float(logits[i]),
            confidence=confidence_band(p, bands),
            original_position=i,
            reranked_position=new_pos,
        )
        out.append(rec)
    return out if top_k is None else out[: int(top_k)]


"""A small model ranks, the full one rescores its top (:class:`CascadeScorer`): one of notebook 05's
speed levers."""

from __future__ import annotations

import numpy as np

from course_lib.scorers.base import Scorer, require_scorer

__all__ = ["CascadeScorer"]


class CascadeScorer(Scorer):
    """Two steps: a small (fast) scorer ranks every candidate of a query, the full scorer rescores
    its top ``rescore_top``; the rest keep the small scorer's order below them.

    Works per query (pairs are grouped by their query text, in order).  The returned values rank
    correctly within a query; those below the top ``rescore_top`` are not on the full model's
    scale — use probabilities only from the rescored top.
    """

    def __init__(self, small: Scorer, full: Scorer, rescore_top: int = 10):
        if rescore_top < 1:
            raise ValueError(f"rescore_top must be at least 1, got {rescore_top}")
        self.small, self.full = require_scorer(small, "small"), require_scorer(full, "full")
        self.rescore_top = rescore_top
        self.calibration = full.calibration

    def score_pairs(self, pairs):
        out = np.empty(len(pairs), dtype=np.float32)
        by_query: dict[str, list[int]] = {}
        for i, (q, _) in enumerate(pairs):
            by_query.setdefault(q, []).append(i)
        for q, idx in by_query.items():
            s = np.asarray(self.small.score_pairs([pairs[i] for i in idx]), dtype=np.float32)
            order = np.argsort(-s, kind="stable")
            top = order[: self.rescore_top]
            f = np.asarray(self.full.score_pairs([pairs[idx[j]] for j in top]), dtype=np.float32)
            floor = float(f.min()) if len(f) else 0.0
            for rank, j in enumerate(order):
                out[idx[j]] = f[rank] if rank < len(top) else floor - 1.0 - 1e-3 * (rank - len(top))
        return out

    def fingerprint(self):
        a, b = self.small.fingerprint(), self.full.fingerprint()
        return f"cascade-{a}-{b}-{self.rescore_top}" if a and b else None

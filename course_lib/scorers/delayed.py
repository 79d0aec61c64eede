"""A scorer that is slow on purpose (:class:`DelayedScorer`): notebook 07 uses it to show queues,
deadlines and back-pressure at work without a slow model."""

from __future__ import annotations

import threading
import time

from course_lib.scorers.base import Scorer, WrappingScorer

__all__ = ["DelayedScorer"]


class DelayedScorer(WrappingScorer):
    """A :class:`~course_lib.scorers.base.Scorer` that takes ``delay_s`` longer per call than the one
    it wraps — a stand-in for a slow or busy model.  It records the pairs of every call in ``calls``.

    >>> from course_lib.scorers.base import Scorer
    >>> import numpy as np
    >>> class Zero(Scorer):
    ...     def score_pairs(self, pairs):
    ...         return np.zeros(len(pairs))
    >>> slow = DelayedScorer(Zero(), delay_s=0.01)
    >>> slow.score("q", ["a", "b"]).tolist(), len(slow.calls)
    ([0.0, 0.0], 1)
    """

    def __init__(self, scorer: Scorer, delay_s: float = 1.0):
        super().__init__(scorer)
        self.delay_s, self.calls = delay_s, []
        self._lock = threading.Lock()

    def score_pairs(self, pairs):
        with self._lock:
            self.calls.append(list(pairs))
        time.sleep(self.delay_s)
        return self.scorer.score_pairs(pairs)

    def fingerprint(self) -> str | None:
        inner = self.scorer.fingerprint()
        return None if inner is None else f"delayed-{inner}"

"""The course's reranker, :class:`AdvancedReranker` (``rerank_with_confidence``, ``batch_rerank``).

It takes any :class:`~course_lib.scorers.base.Scorer` (default: the shipped course reranker as a
:class:`~course_lib.scorers.cross_encoder.CrossEncoderScorer`) and builds its results with
:func:`~course_lib.scorers.base.rank_results`.  Domain systems take any
:class:`~course_lib.scorers.base.Ranker` (anything with ``rerank_with_confidence``).

The scoring protocol and the scorers live in :mod:`course_lib.scorers`; their names are also
importable from here (``from course_lib.rerank import CrossEncoderScorer``), where the course
first taught them.

Example
-------
>>> from course_lib.rerank import AdvancedReranker
>>> rr = AdvancedReranker()                      # the shipped course reranker, offline
>>> docs = [{"id": "a", "text": "The Eiffel Tower is in Paris."},
...         {"id": "b", "text": "Photosynthesis turns light into chemical energy."}]
>>> out = rr.rerank_with_confidence("Where is the Eiffel Tower?", docs, top_k=2, score_threshold=0.0)
>>> [d["id"] for d in out], "relevance_score" in docs[0]
(['a', 'b'], False)
"""

from __future__ import annotations

import numpy as np

from course_lib.calibration import Calibration
from course_lib.scorers.base import Ranker, Scorer, rank_results, require_scorer  # Ranker: re-exported
from course_lib.scorers.base import validate_candidates, validate_query, validate_rank_args
from course_lib.scorers.cross_encoder import CrossEncoderScorer

# The names the course first taught from here still import from here.
__all__ = ["AdvancedReranker", "Scorer", "Ranker", "CrossEncoderScorer", "rank_results", "validate_query",
           "validate_rank_args", "validate_candidates"]


# -- the course's reranker -----------------------------------------------------------------------
class AdvancedReranker:
    """The course's reranker: confidence bands, probability thresholds, batch reranking.

    Args:
        model_name: None (the course reranker) or any name/path ``load_reranker`` accepts.
        scorer: an existing :class:`Scorer` to use instead of loading ``model_name``.
        calibration: overrides the scorer's logit -> probability map (see
            :mod:`course_lib.calibration`).
        confidence_bands: probability cut-offs for "high" and "medium" (else "low").
    """

    def __init__(
        self,
        model_name=None,
        *,
        scorer: Scorer | None = None,
        calibration: Calibration | None = None,
        confidence_bands: tuple[float, float] = (0.8, 0.5),
        batch_size: int = 32,
    ):
        require_scorer(scorer, optional=True)
        self.scorer = scorer if scorer is not None else CrossEncoderScorer(model_name, batch_size=batch_size)
        self.calibration = calibration
        self.bands = tuple(confidence_bands)

    def probabilities(self, logits) -> np.ndarray:
        if self.calibration is not None:
            return self.calibration.probabilities(logits)
        return self.scorer.probabilities(logits)

    def _results(self, candidates, logits, top_k, score_threshold) -> list[dict]:
        return rank_results(candidates, logits, self.probabilities(logits), top_k=top_k,
                            score_threshold=score_threshold, bands=self.bands)

    def rerank_with_confidence(
        self, query: str, candidates: list[dict], top_k: int | None = 10, score_threshold: float = 0.5
    ) -> list[dict]:
        """Score, sort, threshold and cut one query's candidates (result shape: :func:`rank_results`).

        The input is untouched; ties keep input order; an empty candidate list returns ``[]``.
        """
        validate_query(query)
        validate_rank_args(top_k, score_threshold)
        validate_candidates(candidates)
        if not candidates:
            return []
        logits = self.scorer.score(query, [c["text"] for c in candidates])
        return self._results(candidates, logits, top_k, score_threshold)

    def batch_rerank(
        self,
        queries: list[str],
        candidates_list: list[list[dict]],
        batch_size: int | None = None,
        top_k: int | None = 10,
        score_threshold: float = 0.5,
    ) -> list[list[dict]]:
        """Rerank many queries with one scoring pass over all their pairs.

        All pairs are scored together (``batch_size`` per forward pass; None = the scorer's),
        then split back per query; the result equals ``[rerank_with_confidence(q, c, ...)]``,
        and the same arguments are rejected by both.
        """
        if not isinstance(queries, (list, tuple)) or not isinstance(candidates_list, (list, tuple)):
            raise TypeError("queries and candidates_list must be lists")
        if len(queries) != len(candidates_list):
            raise ValueError(f"{len(queries)} queries but {len(candidates_list)} candidate lists")
        validate_rank_args(top_k, score_threshold)
        for i, (q, cands) in enumerate(zip(queries, candidates_list)):
            validate_query(q, f"queries[{i}]")
            validate_candidates(cands, f"candidates_list[{i}]")
        scorer = self.scorer if batch_size is None else self.scorer.configured(batch_size=batch_size)
        pairs = [(q, c["text"]) for q, cands in zip(queries, candidates_list) for c in cands]
        logits = scorer.score_pairs(pairs) if pairs else np.zeros(0, dtype=np.float32)
        out, start = [], 0
        for cands in candidates_list:
            n = len(cands)
            out.append(self._results(cands, logits[start : start + n], top_k, score_threshold) if n else [])
            start += n
        return out

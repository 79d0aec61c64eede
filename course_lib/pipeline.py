"""The two-stage retriever: first stage top-K, cross-encoder rerank, fused score, top-M.

Example
-------
>>> from course_lib.data import load_course_corpus
>>> from course_lib.retrieval import BM25Retriever
>>> from course_lib.pipeline import TwoStageRetriever
>>> ds = load_course_corpus()
>>> pipe = TwoStageRetriever(BM25Retriever(ds.corpus), k=20, m=3)
>>> res = pipe.search("How does a vaccine protect against disease?")
>>> len(res.results), sorted(res.timings)
(3, ['first_stage_s', 'rerank_s'])
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from course_lib.fusion import DEFAULT_FUSION_WEIGHT, zscore_fuse
from course_lib.scorers.base import Scorer, rank_results, validate_query, validate_rank_args
from course_lib.scorers.cross_encoder import CrossEncoderScorer


@dataclass
class SearchResult:
    """Results of one query, best first, and how long each stage took (seconds)."""

    query: str
    results: list[dict]
    timings: dict[str, float] = field(default_factory=dict)
    n_candidates: int = 0

    def ids(self) -> list[str]:
        return [r["id"] for r in self.results]


class TwoStageRetriever:
    """First stage (any ``retrieve(query, k)``) -> cross-encoder -> fusion -> top ``m``.

    Args:
        first_stage: a retriever from :mod:`course_lib.retrieval`.
        scorer: a :class:`course_lib.rerank.Scorer`; None loads the course reranker.
        k: candidates taken from the first stage (recall budget, typically 50-100).
        m: results returned (precision budget, typically 5-10).
        fusion_weight: weight of the cross-encoder in the per-query z-score fusion with the
            first-stage score; 1.0 = cross-encoder alone, 0.0 = first stage alone.  The default
            was chosen on tuning queries, never on a reported test set (see :mod:`course_lib.fusion`).
        score_threshold: drop results whose cross-encoder probability is below it (0 = keep all).

    Result dicts: see :meth:`combine`.
    """

    def __init__(
        self,
        first_stage,
        scorer: Scorer | None = None,
        k: int = 50,
        m: int = 10,
        fusion_weight: float = DEFAULT_FUSION_WEIGHT,
        score_threshold: float = 0.0,
    ):
        if not hasattr(first_stage, "retrieve"):
            raise TypeError(f"first_stage needs a retrieve(query, k) method, got {type(first_stage).__name__}")
        if scorer is not None and not isinstance(scorer, Scorer):
            raise TypeError(f"scorer must be a course_lib.rerank.Scorer, got {type(scorer).__name__}")
        _check_budget(k, m)
        if not 0.0 <= fusion_weight <= 1.0:
            raise ValueError(f"fusion_weight must lie in [0, 1], got {fusion_weight}")
        validate_rank_args(None, score_threshold)
        self.first_stage = first_stage
        self.scorer = scorer if scorer is not None else CrossEncoderScorer()
        self.k, self.m = k, m
        self.fusion_weight = fusion_weight
        self.score_threshold = score_threshold

    def combine(self, candidates: list[dict], logits, score_threshold: float | None = None) -> list[dict]:
        """Attach both stages' scores and ranks and the fused score; sort by fused score.

        Results have :func:`~course_lib.rerank.rank_results`' shape (``reranked_position`` is the
        position by fused score) plus ``first_stage_score``, ``first_stage_rank`` (from 1),
        ``rerank_rank`` (rank by the cross-encoder alone, from 1), ``fused_score`` and ``rank``
        (the final rank, from 1).
        """
        logits = np.asarray(logits, dtype=np.float64)
        fused = zscore_fuse(logits, [c["score"] for c in candidates], self.fusion_weight)
        by_logit = sorted(range(len(candidates)), key=lambda i: (-logits[i], i))
        rerank_rank = {i: r for r, i in enumerate(by_logit, 1)}
        base = [{k: v for k, v in c.items() if k not in ("score", "rank")} for c in candidates]
        out = rank_results(base, logits, self.scorer.probabilities(logits), order_by=fused,
                           score_threshold=self.score_threshold if score_threshold is None else score_threshold)
        for rank, rec in enumerate(out, 1):
            i = rec["original_position"]
            rec.update(first_stage_score=float(candidates[i]["score"]), first_stage_rank=int(candidates[i]["rank"]),
                       rerank_rank=rerank_rank[i], fused_score=float(fused[i]), rank=rank)
        return out

    def search(self, query: str, k: int | None = None, m: int | None = None,
               score_threshold: float | None = None) -> SearchResult:
        """Run both stages for one query (``k``, ``m`` and ``score_threshold`` override the defaults)."""
        validate_query(query)
        k = self.k if k is None else k
        m = self.m if m is None else m
        _check_budget(k, m)
        threshold = self.score_threshold if score_threshold is None else score_threshold
        validate_rank_args(None, threshold)
        t0 = time.perf_counter()
        cands = self.first_stage.retrieve(query, k)
        t1 = time.perf_counter()
        logits = self.scorer.score(query, [c["text"] for c in cands]) if cands else np.zeros(0)
        t2 = time.perf_counter()
        ranked = self.combine(cands, logits, threshold) if cands else []
        return SearchResult(query, ranked[:m], {"first_stage_s": t1 - t0, "rerank_s": t2 - t1}, len(cands))


def _check_budget(k, m) -> None:
    for name, v in (("k", k), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if v < 1:
            raise ValueError(f"{name} must be positive, got {v}")

"""Latency optimisation (notebook 05): levers that keep quality, measured; a cheap pre-filter made safe.

One job per module:

================  ===================================================================================
``levers``        :class:`Lever` (a speed lever as data), :func:`pre_filter`, :func:`adaptive_k`,
                  :func:`small_reranker_path` (the distilled speed tier)
``levels``        :class:`OptimizedReranker` and :func:`measured_levels` (the levels chosen on tuning queries)
``registry``      the ``course-lib bench`` variants (:func:`bench_variants`, :func:`naive_rank`, ...)
``evaluation``    :func:`quality_at_k`, :func:`pre_filter_sweep` (notebook 05's tables)
================  ===================================================================================

The speed levers that are scorers live with the other scorers (:mod:`course_lib.scorers`:
``TokenBudgetScorer``, ``CascadeScorer``, ``OnnxScorer``); their names are importable from here too.

Levels are *measured*, not promised: ``python -m course_lib.instructor choose-levels`` runs every
lever on tuning queries (SciFact dev claims) and picks ``balanced`` (the fastest within 0.005 NDCG@10
of the full model) and ``speed`` (the fastest within 0.02); ``course-lib bench`` measures them on any dataset.

Example
-------
>>> from course_lib.optimize import jaccard
>>> jaccard("", "")
0.0
"""

from course_lib.optimize.evaluation import pre_filter_sweep, quality_at_k
from course_lib.optimize.levels import LEVELS_FILE, OptimizedReranker, measured_levels
from course_lib.optimize.levers import Lever, adaptive_k, jaccard, pre_filter, pre_filter_positions, small_reranker_path
from course_lib.optimize.registry import ADAPTIVE_MARGIN, BENCH_VARIANTS, adaptive_rank, bench_variants, naive_rank, scorer_rank
from course_lib.scorers.cascade import CascadeScorer
from course_lib.scorers.token_budget import TokenBudgetScorer

__all__ = [
    "OptimizedReranker", "measured_levels", "LEVELS_FILE", "Lever", "jaccard", "pre_filter", "pre_filter_positions",
    "adaptive_k", "small_reranker_path", "quality_at_k", "pre_filter_sweep", "BENCH_VARIANTS", "ADAPTIVE_MARGIN",
    "bench_variants", "naive_rank", "scorer_rank", "adaptive_rank", "CascadeScorer", "TokenBudgetScorer",
]

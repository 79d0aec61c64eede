"""Every scorer of the course, one per module, on one base (:mod:`course_lib.scorers.base`).

=============================  ===================================================================
module                         scorer
=============================  ===================================================================
``base``                       :class:`Scorer` (the protocol), :class:`WrappingScorer` (delegation),
                               :func:`rank_results` and the input checks
``cross_encoder``              :class:`CrossEncoderScorer` (a sentence-transformers ``CrossEncoder``)
``cached``                     :class:`CachedScorer` (pair LRU), :class:`CollectionScorer` (on disk)
``token_budget``               :class:`TokenBudgetScorer` (length-aware batches)
``cascade``                    :class:`CascadeScorer` (small model ranks, full model rescores its top)
``onnx`` / ``onnx_export``     :class:`OnnxScorer` (ONNX Runtime fp32/int8) / export and quantisation
``delayed``                    :class:`DelayedScorer` (slow on purpose, for notebook 07)
=============================  ===================================================================

Importing this package loads no model and no torch.

>>> from course_lib.scorers import Scorer, WrappingScorer, CrossEncoderScorer
>>> issubclass(CrossEncoderScorer, Scorer), issubclass(WrappingScorer, Scorer)
(True, True)
"""

from course_lib.scorers.base import (
    Ranker,
    Scorer,
    ScoringStats,
    WrappingScorer,
    confidence_band,
    rank_results,
    require_scorer,
    validate_candidates,
    validate_query,
    validate_rank_args,
)
from course_lib.scorers.cached import CachedScorer, CollectionScorer
from course_lib.scorers.cascade import CascadeScorer
from course_lib.scorers.cross_encoder import CrossEncoderScorer, cap_query, weights_fingerprint
from course_lib.scorers.delayed import DelayedScorer
from course_lib.scorers.onnx import OnnxScorer
from course_lib.scorers.token_budget import TokenBudgetScorer

__all__ = [
    "Scorer", "WrappingScorer", "Ranker", "ScoringStats", "require_scorer", "rank_results", "confidence_band",
    "validate_query", "validate_rank_args", "validate_candidates", "CrossEncoderScorer", "cap_query",
    "weights_fingerprint", "CachedScorer", "CollectionScorer", "TokenBudgetScorer", "CascadeScorer", "OnnxScorer",
    "DelayedScorer",
]

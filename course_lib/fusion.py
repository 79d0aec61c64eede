"""Combining rankings: score fusion of the two stages, and reciprocal-rank fusion (RRF).

**Score fusion** is the course pipeline's default last step.  A cross-encoder trained on one
domain can rank below the first stage on another; mixing the two stages' scores keeps what the
first stage knows.  The scores live on different scales (a cosine in [-1, 1], a logit in
[-20, 20]), so each is z-scored *within the query's candidate list* before mixing::

    fused = w * z(cross-encoder logit) + (1 - w) * z(first-stage score)

``w = 1`` is the cross-encoder alone, ``w = 0`` the first stage alone.

**RRF** merges rankings from different retrievers (dense + BM25) by rank alone:
``sum 1 / (k + rank)``.

Example
-------
>>> zscore_fuse([2.0, 0.0, 1.0], [0.1, 0.3, 0.2], weight=1.0)
[1.224744871391589, -1.224744871391589, 0.0]
>>> rrf([["a", "b"], ["b", "c"]], k=60)["b"] > rrf([["a", "b"], ["b", "c"]], k=60)["a"]
True
"""

from __future__ import annotations

import math

# Chosen by scripts/select_fusion_weight.py on tuning queries only — SciFact *train* queries held out
# from the reranker's training, half of Cranfield's queries (dense top 100), 100 held-out MedQuAD train
# questions and 2,488 ObliQA dev questions (dense top 30) — by the max-min rule (issue #27): the weight whose
# *worst* NDCG@10 gain over the first stage across those sets is highest, the smallest within 0.002 of it
# (recorded in the model's calibration_report.json; see course_lib/course_reranker/assets/README.md).  The
# mean-gain rule had chosen 0.85, which fell below the first stage on kinds of text it was not tuned on.
# No test split was read.
DEFAULT_FUSION_WEIGHT = 0.55


def zscore(values) -> list[float]:
    """Standardise to mean 0 and (population) standard deviation 1; constant input gives zeros."""
    vals = [float(v) for v in values]
    if not vals:
        return []
    mu = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - mu) ** 2 for v in vals) / len(vals))
    if sd < 1e-12:
        return [0.0] * len(vals)
    return [(v - mu) / sd for v in vals]


def zscore_fuse(rerank_scores, first_stage_scores, weight: float = DEFAULT_FUSION_WEIGHT) -> list[float]:
    """Fuse two score lists of one query's candidates (same order) by per-query z-scores."""
    if len(rerank_scores) != len(first_stage_scores):
        raise ValueError("rerank_scores and first_stage_scores must have the same length")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight must lie in [0, 1], got {weight}")
    zr, zf = zscore(rerank_scores), zscore(first_stage_scores)
    return [weight * a + (1.0 - weight) * b for a, b in zip(zr, zf)]


def rrf(rankings: list[list[str]], k: int = 60) -> dict[str, float]:
    """Reciprocal-rank fusion of several ranked id lists: ``id -> sum 1/(k + rank)`` (ranks from 1)."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, 1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
    return scores

"""Measuring levers with labels (notebook 05): quality at a candidate depth, and the pre-filter sweep."""

from __future__ import annotations

from course_lib import metrics
from course_lib.fusion import DEFAULT_FUSION_WEIGHT
from course_lib.optimize.levers import pre_filter
from course_lib.runs import fused_run, rerank_scores, top_k_run
from course_lib.scorers.base import Scorer

__all__ = ["quality_at_k", "pre_filter_sweep"]


def quality_at_k(ds, first, scorer: Scorer, k: int, label: str = "", fusion_weight: float | None = None) -> dict:
    """Rerank each query's first-stage top ``k`` with ``scorer`` and measure it.

    Returns ``{"setting", "K", "pairs per query", "recall ceiling", "cross-encoder ndcg@10",
    "fused ndcg@10", "seconds per query"}`` (no cache: every pair is scored, so the seconds are real).
    """
    run = top_k_run(first, k)
    scores, secs, n_pairs = rerank_scores(ds, run, scorer, None, show_progress=False)
    w = DEFAULT_FUSION_WEIGHT if fusion_weight is None else fusion_weight
    n_q = max(1, len(ds.queries))
    return {
        "setting": label, "K": k, "pairs per query": n_pairs / n_q,
        "recall ceiling": round(metrics.mean(metrics.recall(run, ds.qrels, k)), 3),
        "cross-encoder ndcg@10": round(metrics.mean(metrics.ndcg(scores, ds.qrels, 10)), 3),
        "fused ndcg@10": round(metrics.mean(metrics.ndcg(fused_run(run, scores, w), ds.qrels, 10)), 3),
        "seconds per query": sum(secs.values()) / n_q,
    }


def pre_filter_sweep(ds, first, scorer: Scorer, settings=((0.0, 50), (0.05, 10), (0.1, 10), (0.2, 5)), k: int = 50) -> list[dict]:
    """For each ``(min_similarity, min_keep)``: pairs left per query, recall ceiling and NDCG@10
    after :func:`pre_filter` on the first-stage top ``k``."""
    rows = []
    for min_sim, min_keep in settings:
        run = {}
        for qid, c in first.items():
            cand = [{"id": d, "text": ds.doc_text(d)} for d in metrics.ranked(c, k)]
            kept = {x["id"] for x in pre_filter(ds.queries[qid], cand, min_sim, min_keep)}
            run[qid] = {d: s for d, s in c.items() if d in kept}
        scores, _, n = rerank_scores(ds, run, scorer, None, show_progress=False)
        rows.append({"min similarity": min_sim, "min keep": min_keep, "pairs per query": round(n / max(1, len(ds.queries)), 1),
                     "recall ceiling": round(metrics.mean(metrics.recall(run, ds.qrels, k)), 3),
                     "cross-encoder ndcg@10": round(metrics.mean(metrics.ndcg(scores, ds.qrels, 10)), 3)})
    return rows

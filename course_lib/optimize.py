"""Latency optimisation: cheap pre-filters, shorter inputs, reduced precision, a pair cache.

``OptimizedReranker`` keeps the course's API (``optimized_rerank``, three levels) and fixes
its sample code: the Jaccard pre-filter no longer divides by zero on empty text, it never
filters the list down to nothing (it keeps at least ``min_keep`` candidates), scores are not
written into the caller's dicts, the number of results is a parameter, and the model is
loaded once (each level is a :class:`~course_lib.rerank.Scorer` setting on the same model).

Levels (measure them on your data: ``scripts/bench_rerank.py`` prints throughput):

* ``"accuracy"`` — every candidate, the model's full max length;
* ``"balanced"`` — every candidate, pairs cut to ``short_length`` tokens;
* ``"speed"``   — Jaccard pre-filter, ``short_length`` tokens, and bf16 autocast.

Example
-------
>>> from course_lib.optimize import jaccard
>>> jaccard("", "")
0.0
>>> round(jaccard("the cat sat", "the cat ran"), 2)
0.5
"""

from __future__ import annotations

import re
import time

from course_lib.rerank import (
    AdvancedReranker,
    CrossEncoderScorer,
    Scorer,
    validate_candidates,
    validate_query,
    validate_rank_args,
)

_WORD = re.compile(r"\w+")


def jaccard(a: str, b: str) -> float:
    """Word-set Jaccard similarity; 0.0 when both texts are empty (no division by zero)."""
    sa, sb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    union = sa | sb
    return len(sa & sb) / len(union) if union else 0.0


def pre_filter_positions(query: str, candidates: list[dict], min_similarity: float = 0.05, min_keep: int = 10) -> list[int]:
    """Positions of the candidates with Jaccard >= ``min_similarity``, topped up to ``min_keep`` by
    Jaccard order (so the list is never emptied), in their original order."""
    if min_keep < 0:
        raise ValueError(f"min_keep must be >= 0, got {min_keep}")
    sims = [jaccard(query, c["text"]) for c in candidates]
    keep = {i for i, s in enumerate(sims) if s >= min_similarity}
    if len(keep) < min_keep:
        for i in sorted(range(len(candidates)), key=lambda i: (-sims[i], i)):
            if len(keep) >= min_keep:
                break
            keep.add(i)
    return sorted(keep)


def pre_filter(query: str, candidates: list[dict], min_similarity: float = 0.05, min_keep: int = 10) -> list[dict]:
    """The candidates :func:`pre_filter_positions` keeps: the same dict objects (no copies, no
    changes), in their original order."""
    return [candidates[i] for i in pre_filter_positions(query, candidates, min_similarity, min_keep)]


class OptimizedReranker:
    """The course's ``OptimizedReranker``: one model, three latency/quality levels.

    Args:
        model_name: None (the course reranker) or any name/path ``load_reranker`` accepts.
        optimization_level: ``"speed"``, ``"balanced"`` or ``"accuracy"``.
        scorer: a loaded :class:`~course_lib.rerank.CrossEncoderScorer` to use instead of
            loading ``model_name`` (the levels are settings on its model: nothing is loaded twice;
            another kind of Scorer has no max length or precision to set, so it is refused).
        short_length: the pair token limit of the faster levels.
    """

    LEVELS = ("speed", "balanced", "accuracy")

    def __init__(self, model_name=None, optimization_level: str = "balanced", short_length: int = 128,
                 scorer: CrossEncoderScorer | None = None):
        if optimization_level not in self.LEVELS:
            raise ValueError(f"optimization_level must be one of {self.LEVELS}, got {optimization_level!r}")
        base = scorer if scorer is not None else CrossEncoderScorer(model_name)
        if not isinstance(base, CrossEncoderScorer):
            raise TypeError("OptimizedReranker's levels are settings of a cross-encoder (max length, precision): "
                            f"scorer must be a course_lib.rerank.CrossEncoderScorer, got {type(base).__name__}")
        self.optimization_level = optimization_level
        self.scorers = {
            "accuracy": base,
            "balanced": base.configured(max_length=short_length),
            "speed": base.configured(max_length=short_length, autocast="bf16"),
        }
        self.reranker = AdvancedReranker(scorer=self.scorers[optimization_level])

    def optimized_rerank(self, query: str, candidates: list[dict], top_k: int | None = 10,
                         score_threshold: float = 0.0) -> list[dict]:
        """Rerank at the configured level; returns new dicts like :class:`AdvancedReranker`.

        Arguments are checked before any work, at every level.  ``original_position`` always
        refers to the caller's list, even after pre-filtering.
        """
        validate_query(query)
        validate_rank_args(top_k, score_threshold)
        validate_candidates(candidates)
        if self.optimization_level != "speed":
            return self.reranker.rerank_with_confidence(query, candidates, top_k=top_k, score_threshold=score_threshold)
        keep = pre_filter_positions(query, candidates)
        out = self.reranker.rerank_with_confidence(query, [candidates[i] for i in keep], top_k=top_k,
                                                   score_threshold=score_threshold)
        return [{**r, "original_position": keep[r["original_position"]]} for r in out]



# -- measuring levers with labels (notebook 05) --------------------------------------------------
def quality_at_k(ds, first, scorer: Scorer, k: int, label: str = "", fusion_weight: float | None = None) -> dict:
    """Rerank each query's first-stage top ``k`` with ``scorer`` and measure it.

    Returns ``{"setting", "K", "pairs per query", "recall ceiling", "cross-encoder ndcg@10",
    "fused ndcg@10", "seconds per query"}`` (no cache: every pair is scored, so the seconds are real).
    """
    from course_lib import metrics
    from course_lib.fusion import DEFAULT_FUSION_WEIGHT
    from course_lib.runs import fused_run, rerank_scores, top_k_run

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
    from course_lib import metrics
    from course_lib.runs import rerank_scores

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


def level_table(ds, first, rerankers: dict, k: int = 50) -> list[dict]:
    """NDCG@10 and measured seconds per query of each ``{name: OptimizedReranker}`` on the first-stage top ``k``."""
    from course_lib import metrics

    rows = []
    for name, rr in rerankers.items():
        run, t = {}, time.perf_counter()
        for qid, c in first.items():
            cand = [{"id": d, "text": ds.doc_text(d)} for d in metrics.ranked(c, k)]
            out = rr.optimized_rerank(ds.queries[qid], cand, top_k=10)
            run[qid] = {r["id"]: -float(r["reranked_position"]) for r in out}
        rows.append({"level": name, "ndcg@10": round(metrics.mean(metrics.ndcg(run, ds.qrels, 10)), 3),
                     "seconds per query": (time.perf_counter() - t) / max(1, len(first))})
    return rows

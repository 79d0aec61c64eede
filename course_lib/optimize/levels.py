"""``OptimizedReranker`` and its three levels, *defined by measurement* on tuning queries.

The record (``course_lib/assets/optimize_levels.json``, written by
``python -m course_lib.instructor choose-levels``) stores each level as a :class:`~course_lib.optimize.levers.Lever`
(structured data), its label, the rule and every measured row.

``OptimizedReranker`` keeps the course's API (``optimized_rerank``, three levels) and fixes its sample
code: scores are not written into the caller's dicts, the number of results is a parameter, each model
is loaded once, and ``original_position`` indexes the caller's list.
"""

from __future__ import annotations

import json

from course_lib import settings
from course_lib.optimize.levers import Lever, adaptive_k, small_reranker_path
from course_lib.rerank import AdvancedReranker
from course_lib.scorers.base import Scorer, validate_candidates, validate_query, validate_rank_args
from course_lib.scorers.cross_encoder import CrossEncoderScorer

__all__ = ["OptimizedReranker", "measured_levels", "LEVELS_FILE"]

LEVELS_FILE = settings.PACKAGE_DIR / "assets" / "optimize_levels.json"
LEVEL_NAMES = ("speed", "balanced", "accuracy")


def measured_levels() -> dict:
    """The record ``python -m course_lib.instructor choose-levels`` wrote: ``levels`` (labels),
    ``specs`` (each level's :class:`Lever` fields), the rule, the tuning set and every row; or the
    naive computation at every level when this checkout has none."""
    if LEVELS_FILE.is_file():
        return json.loads(LEVELS_FILE.read_text())
    full = Lever()
    return {"levels": dict.fromkeys(LEVEL_NAMES, full.name), "specs": dict.fromkeys(LEVEL_NAMES, full.to_dict()),
            "rows": [], "rule": "no record: every level is the full model"}


class OptimizedReranker:
    """The course's ``OptimizedReranker``: one full model (and the distilled one), three levels
    *defined by measurement* on tuning queries (``python -m course_lib.instructor choose-levels``
    writes ``course_lib/assets/optimize_levels.json``):

    * ``"accuracy"`` — the full model on every candidate (the naive computation);
    * ``"balanced"`` — the fastest lever within 0.005 NDCG@10 of ``accuracy`` on the tuning queries;
    * ``"speed"``    — the fastest lever within 0.02.

    Each model is loaded once; the levels are Scorers over the same loaded models.  A level whose
    lever uses adaptive K reranks only the candidates close to the best first-stage ``score``
    (candidates without a numeric ``score`` are all reranked).

    Args:
        model_name: None (the course reranker) or any name/path ``load_reranker`` accepts.
        optimization_level: ``"speed"``, ``"balanced"`` or ``"accuracy"``.
        scorer: a loaded :class:`~course_lib.scorers.cross_encoder.CrossEncoderScorer` to use as the full model.
        small_scorer: the speed-tier model (None = the shipped distilled reranker when present).
        levels: ``{level: Lever or its dict}`` (None = the measured record; a level left out is the full model).
    """

    LEVELS = LEVEL_NAMES

    def __init__(self, model_name=None, optimization_level: str = "balanced", scorer: CrossEncoderScorer | None = None,
                 small_scorer: Scorer | None = None, levels: dict | None = None):
        if optimization_level not in self.LEVELS:
            raise ValueError(f"optimization_level must be one of {self.LEVELS}, got {optimization_level!r}")
        base = scorer if scorer is not None else CrossEncoderScorer(model_name)
        if not isinstance(base, CrossEncoderScorer):
            raise TypeError("OptimizedReranker's levels are settings and companions of a cross-encoder: "
                            f"scorer must be a course_lib.scorers.CrossEncoderScorer, got {type(base).__name__}")
        specs = levels if levels is not None else measured_levels()["specs"]
        self.levels = {level: Lever.of(specs.get(level) or {}) for level in self.LEVELS}
        self.optimization_level = optimization_level
        self._small = small_scorer
        self.scorers, self.margins = {}, {}
        for level in self.LEVELS:
            self.scorers[level], self.margins[level] = self.levels[level].build(base, self._small_scorer)
        self.reranker = AdvancedReranker(scorer=self.scorers[optimization_level])

    def _small_scorer(self):
        if self._small is None:
            path = small_reranker_path()
            if path is None:
                raise FileNotFoundError("this level needs the distilled reranker (course_reranker/assets_small/)")
            self._small = CrossEncoderScorer(str(path))
        return self._small

    def optimized_rerank(self, query: str, candidates: list[dict], top_k: int | None = 10,
                         score_threshold: float = 0.0) -> list[dict]:
        """Rerank at the configured level; returns new dicts like :class:`AdvancedReranker`.

        Arguments are checked before any work, at every level.  ``original_position`` always
        refers to the caller's list (with adaptive K, only the candidates kept are returned).
        """
        validate_query(query)
        validate_rank_args(top_k, score_threshold)
        validate_candidates(candidates)
        margin = self.margins[self.optimization_level]
        scores = [c.get("score") for c in candidates]
        if margin is None or not candidates or not all(isinstance(s, (int, float)) for s in scores):
            return self.reranker.rerank_with_confidence(query, candidates, top_k=top_k, score_threshold=score_threshold)
        order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
        keep = sorted(order[: adaptive_k(scores, margin)])
        out = self.reranker.rerank_with_confidence(query, [candidates[i] for i in keep], top_k=top_k,
                                                   score_threshold=score_threshold)
        return [{**r, "original_position": keep[r["original_position"]]} for r in out]

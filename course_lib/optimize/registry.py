"""The bench registry: every speed lever as a ``rank(query, texts, first_scores)`` function for
``course-lib bench`` (:mod:`course_lib.bench`), beside the naive loop."""

from __future__ import annotations

import numpy as np

from course_lib.optimize.levels import measured_levels
from course_lib.optimize.levers import Lever, adaptive_k, small_reranker_path
from course_lib.scorers.base import Scorer
from course_lib.scorers.cascade import CascadeScorer
from course_lib.scorers.cross_encoder import CrossEncoderScorer
from course_lib.scorers.token_budget import TokenBudgetScorer

__all__ = ["BENCH_VARIANTS", "ADAPTIVE_MARGIN", "bench_variants", "naive_rank", "scorer_rank", "adaptive_rank"]

# The margin (cosine units of the dense first stage) of the plain "adaptive K" bench variants; the
# levels' own margins come from the measured record (choose-levels, SciFact dev claims).
ADAPTIVE_MARGIN = 0.1


def naive_rank(model=None, batch_size: int = 32):
    """The naive loop as a bench variant: ``CrossEncoder.predict`` on the pairs, fp32, the model's
    own max length, fixed batches, raw logits."""
    import torch

    from course_lib.models import load_reranker

    model = model or load_reranker()

    def rank(query, texts, first_scores=None):
        return model.predict([(query, t) for t in texts], batch_size=batch_size, activation_fn=torch.nn.Identity(),
                             convert_to_numpy=True, show_progress_bar=False)

    return rank


def scorer_rank(scorer: Scorer):
    """A Scorer as a bench variant (every candidate scored)."""
    return lambda query, texts, first_scores=None: scorer.score(query, texts)


def adaptive_rank(scorer: Scorer, margin: float, k_min: int = 5):
    """Score only the first :func:`adaptive_k` candidates (first-stage order); the rest follow them in
    first-stage order."""
    def rank(query, texts, first_scores):
        n = adaptive_k(first_scores, margin, k_min)
        s = np.asarray(scorer.score(query, texts[:n]), dtype=np.float64)
        floor = float(s.min()) if n else 0.0
        return list(s) + [floor - 1.0 - 1e-3 * i for i in range(len(texts) - n)]

    return rank


BENCH_VARIANTS = ("course scorer", "balanced level", "speed level", "token budget", "max length 128", "bf16 autocast", "fp16 autocast", "adaptive K",
                  "pair cache", "distilled", "cascade", "distilled + adaptive K", "onnx fp32", "onnx int8", "onnx selective")


def bench_variants(names=None, device: str = "cpu", cascade_top: int = 10, adaptive_margin: float | None = None) -> dict:
    """``{name: rank(query, texts, first_scores)}`` for the levers in :data:`BENCH_VARIANTS` (the
    distilled ones only when the checkout ships the small model, fp16 only on a CUDA device).  Each model is
    loaded once, on the device :func:`course_lib.models.pick_device` picks."""
    names = list(BENCH_VARIANTS if names is None else names)
    unknown = set(names) - set(BENCH_VARIANTS)
    if unknown:
        raise ValueError(f"unknown variant(s) {sorted(unknown)}; choose from {', '.join(BENCH_VARIANTS)}")
    full = CrossEncoderScorer()
    small_path = small_reranker_path()
    small = CrossEncoderScorer(str(small_path)) if small_path is not None else None
    margin = ADAPTIVE_MARGIN if adaptive_margin is None else adaptive_margin
    record = measured_levels()  # read the record once, not per level
    out = {}
    for n in names:
        if n.endswith(" level"):
            spec = Lever.of(record["specs"].get(n.split()[0]) or {})
            name = spec.name
            try:
                scorer, m = spec.build(full, lambda: small if small is not None else _missing_small())
            except FileNotFoundError:
                continue
            out[f"{n}: {name}"] = adaptive_rank(scorer, m) if m is not None else scorer_rank(scorer)
        elif n == "course scorer":  # the full model through the course's scorer: its host path, the same logits
            out[n] = scorer_rank(full)
        elif n == "token budget":
            out[n] = scorer_rank(TokenBudgetScorer(full))
        elif n == "max length 128":
            out[n] = scorer_rank(full.configured(max_length=128))
        elif n == "bf16 autocast":
            out[n] = scorer_rank(full.configured(autocast="bf16"))
        elif n == "fp16 autocast":
            if str(full.model.device).startswith("cuda"):  # a GPU's fast path; no fast fp16 on a CPU
                out[n] = scorer_rank(full.configured(autocast="fp16"))
        elif n == "adaptive K":
            out[n] = adaptive_rank(full, margin)
        elif n == "pair cache":  # pays only on a stream where queries come back (course-lib bench --repeat)
            from course_lib.caches import LRUScoreCache
            from course_lib.scorers.cached import CachedScorer

            out[n] = scorer_rank(CachedScorer(full, LRUScoreCache(maxsize=1_000_000, model_id=full.fingerprint() or "")))
        elif n.startswith("onnx "):  # ONNX Runtime on the full model (course_lib.scorers.onnx; needs onnx)
            from course_lib.scorers.onnx import OnnxScorer

            out[n] = scorer_rank(OnnxScorer(full, precision=n.split()[1]))
        elif small is None:
            continue  # no distilled model in this checkout
        elif n == "distilled":
            out[n] = scorer_rank(small)
        elif n == "cascade":
            out[n] = scorer_rank(CascadeScorer(small, full, cascade_top))
        elif n == "distilled + adaptive K":
            out[n] = adaptive_rank(small, margin)
    return out


def _missing_small():
    raise FileNotFoundError("no distilled reranker on this machine")

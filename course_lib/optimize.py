"""Latency optimisation: levers that keep quality, measured; a cheap pre-filter made safe.

``OptimizedReranker`` keeps the course's API (``optimized_rerank``, three levels) and fixes
its sample code: scores are not written into the caller's dicts, the number of results is a
parameter, each model is loaded once, and ``original_position`` indexes the caller's list.  The
Jaccard :func:`pre_filter` no longer divides by zero on empty text and never filters the list down
to nothing (it keeps at least ``min_keep`` candidates).

Levels are *measured*, not promised: ``scripts/choose_levels.py`` runs every lever on tuning
queries (SciFact dev claims) and picks ``balanced`` (the fastest within 0.005 NDCG@10 of the full
model) and ``speed`` (the fastest within 0.02); ``course-lib bench`` measures them on any dataset.
The levers: :class:`TokenBudgetScorer` (length-aware batches), :class:`CascadeScorer` (a small model
ranks, the full one rescores its top), :func:`adaptive_k` (rerank only the candidates close to the best
first-stage score), the distilled reranker (:func:`small_reranker_path`), a shorter max length and bf16.

Example
-------
>>> from course_lib.optimize import jaccard
>>> jaccard("", "")
0.0
>>> round(jaccard("the cat sat", "the cat ran"), 2)
0.5
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

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
    """The course's ``OptimizedReranker``: one full model (and the distilled one), three levels
    *defined by measurement* on tuning queries (``scripts/choose_levels.py`` writes
    ``course_lib/assets/optimize_levels.json``):

    * ``"accuracy"`` — the full model on every candidate (the naive computation);
    * ``"balanced"`` — the fastest lever within 0.005 NDCG@10 of ``accuracy`` on the tuning queries;
    * ``"speed"``    — the fastest lever within 0.02.

    Each model is loaded once; the levels are Scorers over the same loaded models.  A level whose
    lever uses adaptive K reranks only the candidates close to the best first-stage ``score``
    (candidates without a numeric ``score`` are all reranked).

    Args:
        model_name: None (the course reranker) or any name/path ``load_reranker`` accepts.
        optimization_level: ``"speed"``, ``"balanced"`` or ``"accuracy"``.
        scorer: a loaded :class:`~course_lib.rerank.CrossEncoderScorer` to use as the full model.
        small_scorer: the speed-tier model (None = the shipped distilled reranker when present).
        levels: ``{level: lever name}`` (None = the measured record).
    """

    LEVELS = ("speed", "balanced", "accuracy")

    def __init__(self, model_name=None, optimization_level: str = "balanced", scorer: CrossEncoderScorer | None = None,
                 small_scorer: Scorer | None = None, levels: dict | None = None):
        if optimization_level not in self.LEVELS:
            raise ValueError(f"optimization_level must be one of {self.LEVELS}, got {optimization_level!r}")
        base = scorer if scorer is not None else CrossEncoderScorer(model_name)
        if not isinstance(base, CrossEncoderScorer):
            raise TypeError("OptimizedReranker's levels are settings and companions of a cross-encoder: "
                            f"scorer must be a course_lib.rerank.CrossEncoderScorer, got {type(base).__name__}")
        self.levels = dict(levels or measured_levels()["levels"])
        self.optimization_level = optimization_level
        self._small = small_scorer
        self.scorers, self.margins = {}, {}
        for level in self.LEVELS:
            self.scorers[level], self.margins[level] = lever(self.levels.get(level) or "full", base, self._small_scorer)
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


# -- speed levers as Scorers (``course-lib bench``, notebook 05) ---------------------------------
def small_reranker_path():
    """The distilled course reranker, or None when this machine has none: ``$COURSE_SMALL_RERANKER``,
    else ``course_reranker/assets_small/`` in the package, else ``runs/course-reranker-small/`` in the
    checkout (where ``python -m course_lib.course_reranker.distill`` puts it)."""
    import os

    root = Path(__file__).resolve().parent
    for p in (os.environ.get("COURSE_SMALL_RERANKER"), root / "course_reranker" / "assets_small",
              root.parent / "runs" / "course-reranker-small"):
        if p and (Path(p) / "config.json").is_file():
            return Path(p)
    return None


class TokenBudgetScorer(Scorer):
    """Length-aware batching: pairs sorted by length and packed into batches of at most
    ``max_tokens`` padded tokens (so short pairs go many to a batch, long ones few), scored, and put
    back in the caller's order.

    A fixed batch size pads every pair of a batch to its longest; on short passages most of a
    batch of 32 is padding when one long pair joins it, and a fixed size leaves the short batches
    small.  Wraps a :class:`~course_lib.rerank.CrossEncoderScorer` (same model, same settings).
    """

    def __init__(self, base: CrossEncoderScorer, max_tokens: int = 8192, max_batch: int = 256):
        if not isinstance(base, CrossEncoderScorer):
            raise TypeError(f"base must be a CrossEncoderScorer, got {type(base).__name__}")
        if max_tokens < base.max_length:
            raise ValueError(f"max_tokens must hold at least one full pair ({base.max_length})")
        self.base = base.configured(batch_size=max_batch)
        self.max_tokens = max_tokens
        self.max_batch = max_batch
        self.calibration = base.calibration
        self.last_batches: list[int] = []

    def batches(self, lengths) -> list[list[int]]:
        """Positions grouped into batches: by ascending length, each batch's size x its longest
        length within ``max_tokens``.

        >>> s = TokenBudgetScorer.__new__(TokenBudgetScorer); s.max_tokens, s.max_batch = 100, 8
        >>> s.batches([50, 10, 10, 40, 10])
        [[1, 2, 4], [3, 0]]
        """
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
        out, cur, longest = [], [], 0
        for i in order:
            new_longest = max(longest, lengths[i])
            if cur and (new_longest * (len(cur) + 1) > self.max_tokens or len(cur) >= self.max_batch):
                out.append(cur)
                cur, new_longest = [], lengths[i]
            cur.append(i)
            longest = new_longest
        if cur:
            out.append(cur)
        return out

    def score_pairs(self, pairs):
        import numpy as np

        if not len(pairs):
            return np.zeros(0, dtype=np.float32)
        tok = self.base.tokenizer
        enc = tok([q for q, _ in pairs], [t for _, t in pairs], truncation="only_second",
                  max_length=self.base.max_length)["input_ids"]
        groups = self.batches([len(e) for e in enc])
        self.last_batches = [len(g) for g in groups]
        out = np.empty(len(pairs), dtype=np.float32)
        for g in groups:
            out[g] = self.base.score_pairs([pairs[i] for i in g])
        return out

    def fingerprint(self):
        return self.base.fingerprint()


class CascadeScorer(Scorer):
    """Two steps: a small (fast) scorer ranks every candidate of a query, the full scorer rescores
    its top ``rescore_top``; the rest keep the small scorer's order below them.

    Works per query (pairs are grouped by their query text, in order).  The returned values rank
    correctly within a query; those below the top ``rescore_top`` are not on the full model's
    scale — use probabilities only from the rescored top.
    """

    def __init__(self, small: Scorer, full: Scorer, rescore_top: int = 10):
        if rescore_top < 1:
            raise ValueError(f"rescore_top must be at least 1, got {rescore_top}")
        self.small, self.full, self.rescore_top = small, full, rescore_top
        self.calibration = full.calibration

    def score_pairs(self, pairs):
        import numpy as np

        out = np.empty(len(pairs), dtype=np.float32)
        by_query: dict[str, list[int]] = {}
        for i, (q, _) in enumerate(pairs):
            by_query.setdefault(q, []).append(i)
        for q, idx in by_query.items():
            s = np.asarray(self.small.score_pairs([pairs[i] for i in idx]), dtype=np.float32)
            order = np.argsort(-s, kind="stable")
            top = order[: self.rescore_top]
            f = np.asarray(self.full.score_pairs([pairs[idx[j]] for j in top]), dtype=np.float32)
            floor = float(f.min()) if len(f) else 0.0
            for rank, j in enumerate(order):
                out[idx[j]] = f[rank] if rank < len(top) else floor - 1.0 - 1e-3 * (rank - len(top))
        return out

    def fingerprint(self):
        a, b = self.small.fingerprint(), self.full.fingerprint()
        return f"cascade-{a}-{b}-{self.rescore_top}" if a and b else None


def adaptive_k(first_scores, margin: float, k_min: int = 5) -> int:
    """How many first-stage candidates to rerank: those within ``margin`` of the best first-stage
    score, at least ``k_min`` (all of them when fewer).  A query with one clear winner needs few;
    a query whose scores are flat needs them all.

    >>> adaptive_k([0.9, 0.85, 0.5, 0.4], margin=0.1, k_min=1), adaptive_k([0.9, 0.85, 0.5, 0.4], margin=0.5, k_min=1)
    (2, 4)
    """
    s = sorted((float(x) for x in first_scores), reverse=True)
    if not s:
        return 0
    n = sum(1 for x in s if x >= s[0] - margin)
    return min(len(s), max(k_min, n))


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
    import numpy as np

    def rank(query, texts, first_scores):
        n = adaptive_k(first_scores, margin, k_min)
        s = np.asarray(scorer.score(query, texts[:n]), dtype=np.float64)
        floor = float(s.min()) if n else 0.0
        return list(s) + [floor - 1.0 - 1e-3 * i for i in range(len(texts) - n)]

    return rank


BENCH_VARIANTS = ("balanced level", "speed level", "token budget", "max length 128", "bf16 autocast", "fp16 autocast", "adaptive K",
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
    levels = measured_levels()["levels"]  # read the record once, not per level
    out = {}
    for n in names:
        if n.endswith(" level"):
            name = levels.get(n.split()[0], "full")
            try:
                scorer, m = lever(name, full, lambda: small if small is not None else _missing_small())
            except FileNotFoundError:
                continue
            out[f"{n}: {name}"] = adaptive_rank(scorer, m) if m is not None else scorer_rank(scorer)
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
            from course_lib.caches import CachedScorer, LRUScoreCache

            out[n] = scorer_rank(CachedScorer(full, LRUScoreCache(maxsize=1_000_000, model_id=full.fingerprint() or "")))
        elif n.startswith("onnx "):  # ONNX Runtime on the full model (course_lib.onnx_scorer; needs onnx)
            from course_lib.onnx_scorer import OnnxScorer

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


# The margin (cosine units of the dense first stage) of the plain "adaptive K" bench variants; the
# levels' own margins come from the measured record (scripts/choose_levels.py, SciFact dev claims).
ADAPTIVE_MARGIN = 0.1


LEVELS_FILE = Path(__file__).resolve().parent / "assets" / "optimize_levels.json"


def measured_levels() -> dict:
    """The record ``scripts/choose_levels.py`` wrote (levels, rule, tuning set and every row), or
    the naive computation at every level when this checkout has none."""
    if LEVELS_FILE.is_file():
        return json.loads(LEVELS_FILE.read_text())
    return {"levels": dict.fromkeys(OptimizedReranker.LEVELS, "full"), "rows": [], "rule": "no record: every level is the full model"}


_LEVER = re.compile(r"^(?P<kind>full|token budget|max length 128|distilled|cascade \(distilled -> full top (?P<n>\d+)\))"
                    r"?(?:(?: \+ )?adaptive K \(margin (?P<m>[0-9.]+)\))?$")


def lever(name: str, base: CrossEncoderScorer, small=None) -> tuple[Scorer, float | None]:
    """The Scorer (and adaptive-K margin, or None) a lever name from the levels record stands for.

    ``small`` is the distilled scorer, or a callable returning it (loaded only when needed).

    >>> lever.__name__
    'lever'
    """
    m = _LEVER.match(name.strip())
    if not m or not (m.group("kind") or m.group("m")):
        raise ValueError(f"unknown lever {name!r}")
    kind = m.group("kind") or "full"
    margin = float(m.group("m")) if m.group("m") else None
    get_small = small if callable(small) else (lambda: small)
    if kind == "full":
        return base, margin
    if kind == "token budget":
        return TokenBudgetScorer(base), margin
    if kind == "max length 128":
        return base.configured(max_length=128), margin
    if kind == "distilled":
        return get_small(), margin
    return CascadeScorer(get_small(), base, int(m.group("n"))), margin

"""Evaluating a reranked pipeline honestly: realistic vs oracle, intervals, latency, the numbers
``course-lib eval`` prints.

* :func:`evaluate_pipeline` — first stage, cross-encoder alone and fused, as one dict (``course-lib eval``);
* :class:`RerankingEvaluator` / :class:`EvalReport` — per-query tables, the recall ceiling,
  realistic vs oracle, paired-bootstrap comparisons, recall and quality by K, the fusion sweep;
* :func:`paired_bootstrap` — a confidence interval for the difference of two systems;
* :func:`latency_by_k` — measured rerank time per query for several K.

Runs come from :mod:`course_lib.runs`, metrics from :mod:`course_lib.metrics`, caches from
:mod:`course_lib.caches`, plots from :mod:`course_lib.plots`.
"""

from __future__ import annotations

import random

import time

import numpy as np

from course_lib import metrics
from course_lib.caches import ScoreCache
from course_lib.data import Dataset
from course_lib.fusion import DEFAULT_FUSION_WEIGHT
from course_lib.scorers.base import Scorer
from course_lib.scorers.cross_encoder import CrossEncoderScorer
from course_lib.runs import Run, first_stage_run, fused_run, rerank_scores, top_k_run


def _rounded(d: dict, nd: int = 4) -> dict:
    return {k: round(v, nd) for k, v in d.items()}


def _scorer(scorer) -> Scorer:
    if scorer is None:
        return CrossEncoderScorer()
    if not isinstance(scorer, Scorer):
        raise TypeError(f"scorer must be a course_lib.rerank.Scorer, got {type(scorer).__name__}")
    return scorer


def evaluate_pipeline(
    ds: Dataset,
    first_stage: str = "dense",
    k: int = 100,
    scorer: Scorer | None = None,
    fusion_weight: float = DEFAULT_FUSION_WEIGHT,
    max_queries: int | None = None,
    use_cache: bool = True,
    show_progress: bool = True,
    first_only: bool = False,
    sample: int | None = None,
    seed: int = 0,
) -> dict:
    """First stage, cross-encoder alone and the fused pipeline on one dataset split.

    Args:
        scorer: a :class:`~course_lib.rerank.Scorer` (None = the course reranker).
        max_queries: the first ``max_queries`` queries in id order.
        sample: a fixed random subset of ``sample`` queries instead (``seed``; the same subset on
            every machine), for large splits such as ObliQA's.
        first_only: report the first stage alone (no scorer is loaded).
    """
    if sample:
        ds = sample_queries(ds, sample, seed)
    if max_queries:
        ds = ds.subset(sorted(ds.queries)[:max_queries])
    first = first_stage_run(ds, first_stage, k, show_progress=show_progress)
    result = {
        "dataset": ds.name,
        "split": ds.split,
        "n_queries": len(ds.queries),
        "k": k,
        "first_stage": {"name": first_stage, **_rounded(metrics.summary(first, ds.qrels, k))},
    }
    if first_only:
        return result
    scorer = _scorer(scorer)
    cache = ScoreCache.for_scorer(scorer, ds.name) if use_cache else None
    scores, seconds, n_pairs = rerank_scores(ds, first, scorer, cache, show_progress=show_progress)
    result["reranked"] = _rounded(metrics.summary(scores, ds.qrels, k))
    result["fused"] = _rounded(metrics.summary(fused_run(first, scores, fusion_weight), ds.qrels, k))
    result["fusion_weight"] = fusion_weight
    result["rerank_seconds_per_query"] = round(sum(seconds.values()) / max(1, len(seconds)), 3) if n_pairs else None
    result["pairs_scored"] = n_pairs
    return result


def sample_queries(ds: Dataset, n: int, seed: int = 0) -> Dataset:
    """A fixed random subset of ``n`` queries (all of them if there are fewer), in id order.

    >>> from course_lib.data import load_course_corpus
    >>> ds = load_course_corpus()
    >>> sorted(sample_queries(ds, 3).queries) == sorted(sample_queries(ds, 3).queries)
    True
    >>> len(sample_queries(ds, 3).queries)
    3
    """
    qids = sorted(ds.queries)
    if n >= len(qids):
        return ds
    return ds.subset(sorted(random.Random(seed).sample(qids, n)))


def paired_bootstrap(a, b, n_resamples: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean of ``b - a`` over paired per-query values, with a percentile bootstrap interval.

    Resamples *queries* (pairs), which is what makes the interval honest about query-to-query
    variation.  Returns ``{"diff", "low", "high", "p_better"}`` where ``p_better`` is the share
    of resamples in which ``b`` beat ``a``.

    >>> r = paired_bootstrap([0.2, 0.4, 0.6, 0.8], [0.3, 0.5, 0.7, 0.9])
    >>> round(r["diff"], 2), r["low"] > 0
    (0.1, True)
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired_bootstrap needs two equal-length, non-empty sequences")
    d = b - a
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_resamples, d.size))
    means = d[idx].mean(1)
    return {
        "diff": float(d.mean()),
        "low": float(np.quantile(means, alpha / 2)),
        "high": float(np.quantile(means, 1 - alpha / 2)),
        "p_better": float((means > 0).mean()),
    }


class RerankingEvaluator:
    """Evaluate a first stage and a reranker on a labelled dataset, honestly.

    Args:
        ds: a :class:`course_lib.data.Dataset`.
        scorer: a :class:`~course_lib.rerank.Scorer` (None = the course reranker).
        first_stage: ``"dense"``, ``"bm25"``, ``"hybrid"`` or a precomputed run.
        k: candidates per query taken from the first stage (the recall budget).
        fusion_weight: cross-encoder weight in the fused pipeline.
        cache: reuse scores from the on-disk cache, keyed by the scorer's fingerprint
            (``False`` to always rescore).
        measure_latency: score one query at a time so per-query latencies are real.

    Two scores, clearly named:

    * **realistic** — rerank only what the first stage retrieved.  This is what users get.
    * **oracle** — every relevant document is added to the candidates before reranking.  It
      measures the reranker alone and is what many tutorials report by mistake.  For binary
      labels it can never be below the realistic score.

    Example
    -------
    >>> from course_lib.data import load_course_corpus
    >>> ev = RerankingEvaluator(load_course_corpus(), k=20)
    >>> rep = ev.evaluate(show_progress=False)
    >>> sorted(rep.summary.index)[:2]
    ['cross-encoder (oracle)', 'cross-encoder (realistic)']
    """

    def __init__(self, ds: Dataset, scorer: Scorer | None = None, first_stage="dense", k: int = 100,
                 fusion_weight: float = DEFAULT_FUSION_WEIGHT, cache: bool = True, measure_latency: bool = False):
        self.ds = ds
        self.scorer = _scorer(scorer)
        self.first_stage = first_stage
        self.k = k
        self.fusion_weight = fusion_weight
        self.measure_latency = measure_latency
        self._cache = ScoreCache.for_scorer(self.scorer, ds.name) if cache else None
        self._first: Run | None = first_stage if isinstance(first_stage, dict) else None

    def first_run(self, show_progress: bool = False) -> Run:
        if self._first is None:
            self._first = first_stage_run(self.ds, self.first_stage, self.k, show_progress=show_progress)
        return self._first

    def scores(self, run: Run, show_progress: bool = False):
        return rerank_scores(self.ds, run, self.scorer, self._cache,
                             chunk_queries=1 if self.measure_latency else 8, show_progress=show_progress)

    def oracle_run(self, first: Run) -> Run:
        """The first-stage candidates plus every judged-relevant document that was missed."""
        out = {}
        for q, cands in first.items():
            extra = {d: float("-inf") for d, g in self.ds.qrels.get(q, {}).items() if g > 0 and d not in cands and d in self.ds.corpus}
            out[q] = {**cands, **extra}
        return out

    def evaluate(self, show_progress: bool = True) -> "EvalReport":
        """Score every system; returns an :class:`EvalReport`."""
        first = self.first_run(show_progress)
        fs_name = self.first_stage if isinstance(self.first_stage, str) else "first stage"
        realistic, seconds, n_pairs = self.scores(first, show_progress)
        # the oracle adds the missed relevant documents; the candidates it shares with the
        # realistic run were scored just now, so only the additions are scored
        oracle_cands = self.oracle_run(first)
        missed = {q: {d: s for d, s in c.items() if d not in realistic[q]} for q, c in oracle_cands.items()}
        missed_scores, _, _ = self.scores({q: c for q, c in missed.items() if c}, show_progress)
        oracle = {q: {d: missed_scores[q][d] if d in missed[q] else realistic[q][d] for d in c}
                  for q, c in oracle_cands.items()}
        runs = {
            f"first stage ({fs_name})": first,
            "cross-encoder (realistic)": realistic,
            f"fused w={self.fusion_weight} (realistic)": fused_run(first, realistic, self.fusion_weight),
            "cross-encoder (oracle)": oracle,
        }
        per_query = {name: metrics.per_query_table(run, self.ds.qrels, self.k) for name, run in runs.items()}
        return EvalReport(self, runs, per_query, seconds, n_pairs, first, realistic)


class EvalReport:
    """Tables from :meth:`RerankingEvaluator.evaluate` (plots: :mod:`course_lib.plots`)."""

    def __init__(self, ev: RerankingEvaluator, runs, per_query, seconds, n_pairs, first, realistic):
        self.ev, self.runs, self.per_query = ev, runs, per_query
        self.seconds, self.n_pairs = seconds, n_pairs
        self.first, self.realistic = first, realistic

    @property
    def names(self) -> list[str]:
        """System names, in order: first stage, cross-encoder, fused, oracle."""
        return list(self.per_query)

    @property
    def summary(self):
        """One row per system, mean of each metric (rounded to 4 places)."""
        import pandas as pd

        return pd.DataFrame({name: t.mean() for name, t in self.per_query.items()}).T.round(4)

    @property
    def recall_ceiling(self) -> float:
        """Recall@k of the first stage: no reranker of these candidates can find more."""
        return float(self.per_query[self.names[0]][f"recall@{self.ev.k}"].mean())

    def compare(self, a: str, b: str, metric: str = "ndcg@10", **kw) -> dict:
        """Paired bootstrap interval for ``b - a`` on ``metric`` (system names as in :attr:`summary`)."""
        ta, tb = self.per_query[a][metric], self.per_query[b][metric]
        return paired_bootstrap(ta.values, tb.loc[ta.index].values, **kw)

    def gains(self, a: str, b: str, metric: str = "ndcg@10") -> np.ndarray:
        """Per-query ``b - a`` on ``metric`` (what :func:`course_lib.plots.gain_histogram` draws)."""
        ta, tb = self.per_query[a][metric], self.per_query[b][metric]
        return (tb.loc[ta.index] - ta).values

    def latency(self) -> dict:
        """Per-query rerank latency p50/p95 (seconds) and pairs per second, over freshly scored queries."""
        if not self.seconds:
            return {"p50_s": None, "p95_s": None, "pairs_per_s": None, "queries_timed": 0}
        v = np.array(list(self.seconds.values()))
        return {"p50_s": float(np.median(v)), "p95_s": float(np.quantile(v, 0.95)),
                "pairs_per_s": float(self.n_pairs / v.sum()) if v.sum() else None, "queries_timed": int(v.size)}

    def by_k(self, ks=(5, 10, 20, 30, 50, 100)):
        """Recall ceiling and reranked NDCG@10 when only the first-stage top ``k`` is reranked."""
        import pandas as pd

        qrels = self.ev.ds.qrels
        rows = []
        for k in ks:
            if k > self.ev.k:
                continue
            first_k = top_k_run(self.first, k)
            rer_k = {q: {d: self.realistic[q][d] for d in c} for q, c in first_k.items()}
            rows.append({
                "k": k,
                "recall ceiling (recall@k)": metrics.mean(metrics.recall(first_k, qrels, k)),
                "first stage ndcg@10": metrics.mean(metrics.ndcg(first_k, qrels, 10)),
                "cross-encoder ndcg@10": metrics.mean(metrics.ndcg(rer_k, qrels, 10)),
                "fused ndcg@10": metrics.mean(metrics.ndcg(fused_run(first_k, rer_k, self.ev.fusion_weight), qrels, 10)),
            })
        return pd.DataFrame(rows).round(4)

    def fusion_sweep(self, weights=tuple(round(0.1 * i, 1) for i in range(11))):
        """NDCG@10 of the fused pipeline by cross-encoder weight (0 = first stage, 1 = cross-encoder)."""
        import pandas as pd

        return pd.DataFrame([
            {"weight": w, "ndcg@10": metrics.mean(metrics.ndcg(fused_run(self.first, self.realistic, w), self.ev.ds.qrels, 10))}
            for w in weights
        ]).round(4)

    def plot_gain_histogram(self, a: str, b: str, metric: str = "ndcg@10"):
        """Histogram of per-query ``b - a`` (:func:`course_lib.plots.gain_histogram`)."""
        from course_lib.plots import gain_histogram

        return gain_histogram(self.gains(a, b, metric), f"per-query {metric}: {b} minus {a}")


def latency_by_k(ds: Dataset, first: Run, scorer: Scorer, ks=(10, 30, 100), n_queries: int = 5) -> list[dict]:
    """Measured seconds per query to rerank the first-stage top ``k``, for each ``k``, on the
    first ``n_queries`` queries (no cache: every pair is scored)."""
    sample = sorted(first)[:n_queries]
    rows = []
    for k in ks:
        t = time.perf_counter()
        for q in sample:
            scorer.score(ds.queries[q], [ds.doc_text(d) for d in metrics.ranked(first[q], k)])
        rows.append({"K": k, "seconds per query": (time.perf_counter() - t) / max(1, len(sample))})
    return rows

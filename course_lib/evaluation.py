"""Evaluating first stages and reranked pipelines on labelled data.

The building blocks, each usable on its own:

* :func:`first_stage_run` — dense, BM25 or hybrid top-K for every query of a dataset;
* :func:`rerank_scores` — cross-encoder logits for every (query, candidate), with an on-disk
  cache keyed by the model's fingerprint so a second evaluation is instant;
* :func:`fused_run` — the course pipeline's score fusion applied to a whole run;
* :func:`evaluate_pipeline` — the numbers ``course-lib eval`` prints.

Metrics themselves live in :mod:`course_lib.metrics`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from course_lib import metrics
from course_lib.data import Dataset
from course_lib.fusion import DEFAULT_FUSION_WEIGHT, rrf, zscore_fuse

Run = dict[str, dict[str, float]]


def first_stage_run(ds: Dataset, kind: str = "dense", k: int = 100, embedder=None, show_progress: bool = False, index=None) -> Run:
    """Top-``k`` of ``kind`` in {"dense", "bm25", "hybrid"} for every query: ``{qid: {doc_id: score}}``."""
    from course_lib.dense import DenseIndex, encode_texts
    from course_lib.retrieval import BM25Retriever

    qids = sorted(ds.queries)
    texts = [ds.queries[q] for q in qids]
    if kind not in {"dense", "bm25", "hybrid"}:
        raise ValueError(f"first stage must be dense, bm25 or hybrid, got {kind!r}")
    runs = {}
    if kind in {"dense", "hybrid"}:
        index = index or DenseIndex.build(ds.corpus, embedder, cache_key=ds.name, show_progress=show_progress)
        hits = index.search_vectors(encode_texts(texts, index.embedder, show_progress=show_progress), k)
        runs["dense"] = {q: dict(h) for q, h in zip(qids, hits)}
    if kind in {"bm25", "hybrid"}:
        bm25 = BM25Retriever(ds.corpus)
        runs["bm25"] = {q: dict(h) for q, h in zip(qids, bm25.search(texts, k))}
    if kind != "hybrid":
        return runs[kind]
    out = {}
    for q in qids:
        lists = [metrics.ranked(runs[n][q]) for n in ("dense", "bm25")]
        fused = rrf(lists)
        out[q] = {d: fused[d] for d in metrics.ranked(fused, k)}
    return out


def model_fingerprint(scorer) -> str:
    """A short, path-independent id of the model behind a scorer and of its scoring settings.

    Local models are identified by the bytes of their config and weights, hub models by name.
    """
    model = getattr(scorer, "model", None)
    try:
        name = str(model[0].auto_model.name_or_path)  # sentence-transformers CrossEncoder
    except Exception:  # noqa: BLE001 - any scorer may be passed
        name = type(scorer).__name__
    p = Path(name)
    h = hashlib.sha1()
    if (p / "model.safetensors").is_file():
        for f in ("config.json", "model.safetensors"):
            h.update((p / f).read_bytes())
    else:
        h.update(name.encode())
    for attr in ("max_length", "max_query_tokens", "long_documents"):
        h.update(str(getattr(scorer, attr, "")).encode())
    return h.hexdigest()[:16]


class ScoreCache:
    """(query text, doc id) -> logit, stored as gzipped JSON per (model fingerprint, dataset)."""

    def __init__(self, path: Path | None):
        from course_lib.dense import find_cached

        self.path = path
        self.data: dict[str, dict[str, float]] = {}
        found = find_cached(f"{path.parent.name}/{path.name}") if path is not None else None
        if found is not None:
            with gzip.open(found, "rt", encoding="utf-8") as fh:
                self.data = json.load(fh)

    def get(self, query: str, doc_id: str):
        return self.data.get(query, {}).get(doc_id)

    def put(self, query: str, doc_id: str, logit: float) -> None:
        self.data.setdefault(query, {})[doc_id] = float(logit)

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(self.path, "wt", encoding="utf-8") as fh:
                json.dump(self.data, fh)


def rerank_scores(
    ds: Dataset,
    run: Run,
    scorer,
    cache: ScoreCache | None = None,
    chunk_queries: int = 8,
    show_progress: bool = True,
) -> tuple[Run, float, int]:
    """Cross-encoder logits for every candidate in ``run``.

    Returns ``(scores run, seconds spent scoring per query, pairs scored)``; cached pairs
    cost nothing (and count neither as time nor pairs).  With ``chunk_queries=1`` the
    per-query seconds are real per-query latencies; with larger chunks they are the chunk's
    time shared out by pairs.
    """
    from tqdm.auto import tqdm

    out: Run = {}
    todo = []
    for q, cands in run.items():
        out[q] = {}
        for d in cands:
            v = cache.get(ds.queries[q], d) if cache else None
            if v is None:
                todo.append((q, d))
            else:
                out[q][d] = v
    seconds: dict[str, float] = {}
    by_q: dict[str, list[str]] = {}
    for q, d in todo:
        by_q.setdefault(q, []).append(d)
    qs = list(by_q)
    bar = tqdm(total=len(todo), desc="reranking pairs", disable=not show_progress or not todo, unit="pair")
    for i in range(0, len(qs), chunk_queries):
        chunk = qs[i : i + chunk_queries]
        pairs = [(ds.queries[q], ds.doc_text(d)) for q in chunk for d in by_q[q]]
        t0 = time.perf_counter()
        logits = scorer.score_pairs(pairs)
        dt = time.perf_counter() - t0
        for q in chunk:
            seconds[q] = dt * len(by_q[q]) / max(1, len(pairs))
        j = 0
        for q in chunk:
            for d in by_q[q]:
                out[q][d] = float(logits[j])
                if cache is not None:
                    cache.put(ds.queries[q], d, float(logits[j]))
                j += 1
        bar.update(len(pairs))
        if cache is not None and i % (chunk_queries * 10) == 0:
            cache.save()
    bar.close()
    if cache is not None and todo:
        cache.save()
    return out, seconds, len(todo)


def fused_run(first: Run, rerank: Run, weight: float = DEFAULT_FUSION_WEIGHT) -> Run:
    """Per-query z-score fusion of the two stages' scores over each query's candidates."""
    out = {}
    for q, cands in first.items():
        docs = list(cands)
        fused = zscore_fuse([rerank[q][d] for d in docs], [cands[d] for d in docs], weight)
        out[q] = dict(zip(docs, fused))
    return out


def _rounded(d: dict, nd: int = 4) -> dict:
    return {k: round(v, nd) for k, v in d.items()}


def evaluate_pipeline(
    ds: Dataset,
    first_stage: str = "dense",
    k: int = 100,
    reranker=None,
    fusion_weight: float = DEFAULT_FUSION_WEIGHT,
    max_queries: int | None = None,
    use_cache: bool = True,
    show_progress: bool = True,
) -> dict:
    """First stage, cross-encoder alone and the fused pipeline on one dataset split.

    Args:
        reranker: a :class:`course_lib.rerank.Reranker` with ``score_pairs``, a name/path
            for :func:`course_lib.models.load_reranker`, None (the course reranker) or
            ``"none"`` (first stage only).
    """
    from course_lib.dense import cache_dir
    from course_lib.rerank import CrossEncoderScorer

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
    if isinstance(reranker, str) and reranker.lower() == "none":
        return result
    scorer = reranker if hasattr(reranker, "score_pairs") else CrossEncoderScorer(reranker)
    cache = None
    if use_cache:
        fp = model_fingerprint(scorer)
        cache = ScoreCache(cache_dir() / "scores" / f"{fp}-{ds.name}.json.gz")
    scores, seconds, n_pairs = rerank_scores(ds, first, scorer, cache, show_progress=show_progress)
    n_scored_q = len(seconds)
    result["reranked"] = _rounded(metrics.summary(scores, ds.qrels, k))
    result["fused"] = _rounded(metrics.summary(fused_run(first, scores, fusion_weight), ds.qrels, k))
    result["fusion_weight"] = fusion_weight
    result["rerank_seconds_per_query"] = round(sum(seconds.values()) / max(1, n_scored_q), 3) if n_pairs else None
    result["pairs_scored"] = n_pairs
    return result


# --------------------------------------------------------------------------------------
# RerankingEvaluator: realistic vs oracle, confidence intervals, latency
# --------------------------------------------------------------------------------------

METRICS = ("ndcg@10", "mrr@10", "map", "recall@10", "p@10")


def per_query_table(run: Run, qrels, k: int):
    """DataFrame indexed by query id with ndcg@10, mrr@10, map (AP), recall@10, recall@k, p@10."""
    import pandas as pd

    cols = {
        "ndcg@10": metrics.ndcg(run, qrels, 10),
        "mrr@10": metrics.mrr(run, qrels, 10),
        "map": metrics.average_precision(run, qrels),
        "recall@10": metrics.recall(run, qrels, 10),
        f"recall@{k}": metrics.recall(run, qrels, k),
        "p@10": metrics.precision(run, qrels, 10),
    }
    return pd.DataFrame(cols).sort_index()


def paired_bootstrap(a, b, n_resamples: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean of ``b - a`` over paired per-query values, with a percentile bootstrap interval.

    Resamples *queries* (pairs), which is what makes the interval honest about query-to-query
    variation.  Returns ``{"diff", "low", "high", "p_better"}`` where ``p_better`` is the share
    of resamples in which ``b`` beat ``a``.
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
        scorer: a :class:`course_lib.rerank.Reranker` with ``score_pairs`` (None = the course reranker).
        first_stage: ``"dense"``, ``"bm25"``, ``"hybrid"`` or a precomputed run.
        k: candidates per query taken from the first stage (the recall budget).
        fusion_weight: cross-encoder weight in the fused pipeline.
        cache: reuse cross-encoder scores from the on-disk cache (``False`` to always rescore).
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

    def __init__(self, ds: Dataset, scorer=None, first_stage="dense", k: int = 100,
                 fusion_weight: float = DEFAULT_FUSION_WEIGHT, cache: bool = True, measure_latency: bool = False):
        from course_lib.rerank import CrossEncoderScorer

        self.ds = ds
        self.scorer = scorer if scorer is not None else CrossEncoderScorer()
        self.first_stage = first_stage
        self.k = k
        self.fusion_weight = fusion_weight
        self.measure_latency = measure_latency
        self._cache = None
        if cache:
            from course_lib.dense import cache_dir

            self._cache = ScoreCache(cache_dir() / "scores" / f"{model_fingerprint(self.scorer)}-{ds.name}.json.gz")
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
        per_query = {name: per_query_table(run, self.ds.qrels, self.k) for name, run in runs.items()}
        return EvalReport(self, runs, per_query, seconds, n_pairs, first, realistic)


class EvalReport:
    """Tables and plots from :meth:`RerankingEvaluator.evaluate`."""

    def __init__(self, ev: RerankingEvaluator, runs, per_query, seconds, n_pairs, first, realistic):
        self.ev, self.runs, self.per_query = ev, runs, per_query
        self.seconds, self.n_pairs = seconds, n_pairs
        self.first, self.realistic = first, realistic

    @property
    def summary(self):
        """One row per system, mean of each metric (rounded to 4 places)."""
        import pandas as pd

        return pd.DataFrame({name: t.mean() for name, t in self.per_query.items()}).T.round(4)

    @property
    def recall_ceiling(self) -> float:
        """Recall@k of the first stage: no reranker of these candidates can find more."""
        return float(self.per_query[next(iter(self.per_query))][f"recall@{self.ev.k}"].mean())

    def compare(self, a: str, b: str, metric: str = "ndcg@10", **kw) -> dict:
        """Paired bootstrap interval for ``b - a`` on ``metric`` (system names as in :attr:`summary`)."""
        ta, tb = self.per_query[a][metric], self.per_query[b][metric]
        return paired_bootstrap(ta.values, tb.loc[ta.index].values, **kw)

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

        rows = []
        for k in ks:
            if k > self.ev.k:
                continue
            first_k = {q: {d: s for d, s in c.items() if d in set(metrics.ranked(c, k))} for q, c in self.first.items()}
            rer_k = {q: {d: self.realistic[q][d] for d in c} for q, c in first_k.items()}
            rows.append({
                "k": k,
                "recall ceiling (recall@k)": metrics.mean(metrics.recall(first_k, self.ev.ds.qrels, k)),
                "first stage ndcg@10": metrics.mean(metrics.ndcg(first_k, self.ev.ds.qrels, 10)),
                "cross-encoder ndcg@10": metrics.mean(metrics.ndcg(rer_k, self.ev.ds.qrels, 10)),
                "fused ndcg@10": metrics.mean(metrics.ndcg(fused_run(first_k, rer_k, self.ev.fusion_weight), self.ev.ds.qrels, 10)),
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
        """Histogram of per-query ``b - a``: where the reranker helps and where it hurts."""
        import matplotlib.pyplot as plt

        d = (self.per_query[b][metric] - self.per_query[a][metric]).values
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(d, bins=31, color="#66c2a5")
        ax.axvline(0, color="k", lw=1)
        ax.set_xlabel(f"per-query {metric}: {b} minus {a}")
        ax.set_ylabel("queries")
        ax.set_title(f"{(d > 0).sum()} better, {(d < 0).sum()} worse, {(d == 0).sum()} tied")
        fig.tight_layout()
        return fig

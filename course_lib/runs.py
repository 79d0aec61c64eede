"""Runs: ranked lists for every query of a dataset, from each stage of the pipeline.

A *run* is ``{query_id: {doc_id: score}}`` (higher ranks higher), the format
:mod:`course_lib.metrics` scores.

* :func:`first_stage_run` — dense, BM25 or hybrid (reciprocal-rank fusion) top K;
* :func:`rerank_scores` — a :class:`~course_lib.rerank.Scorer`'s logits for every candidate of a
  run, through an optional on-disk :class:`~course_lib.caches.ScoreCache`;
* :func:`fused_run` — the pipeline's per-query z-score fusion of the two stages (:mod:`course_lib.fusion`);
* :func:`top_k_run` — the same run cut to its top k per query;
* :func:`write_trec` / :func:`read_trec` — a run as a TREC run file (``qid Q0 docid rank score tag``),
  to rerank a first stage computed elsewhere (``course-lib bench --run FILE``).

Example
-------
>>> from course_lib.data import load_course_corpus
>>> ds = load_course_corpus()
>>> run = first_stage_run(ds, "bm25", k=5)
>>> len(run) == len(ds.queries), max(len(c) for c in run.values())
(True, 5)
"""

from __future__ import annotations

import time

from course_lib import metrics
from course_lib.data import Dataset
from course_lib.fusion import DEFAULT_FUSION_WEIGHT, zscore_fuse
from course_lib.scorers.base import Scorer

Run = dict[str, dict[str, float]]


def first_stage_run(ds: Dataset, kind: str = "dense", k: int = 100, embedder=None, show_progress: bool = False,
                    index=None) -> Run:
    """Top-``k`` of ``kind`` in {"dense", "bm25", "hybrid"} for every query: ``{qid: {doc_id: score}}``.

    The first stage is :func:`course_lib.retrieval.first_stage` (hybrid: reciprocal-rank fusion of the
    dense and BM25 top ``k``); the dense index is built once per corpus and cached on disk
    (:mod:`course_lib.caches`), and new query vectors are added to the query cache.
    """
    from course_lib.retrieval import first_stage

    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    stage = first_stage(ds.corpus, kind, embedder=embedder, index=index, cache_key=ds.name, show_progress=show_progress,
                        store_queries=True)
    return stage.run(ds.queries, k)


def write_trec(run: Run, path, tag: str = "course") -> None:
    """Write ``run`` as a TREC run file, each query's documents in rank order."""
    from pathlib import Path

    lines = []
    for q in sorted(run):
        for r, d in enumerate(metrics.ranked(run[q]), 1):
            lines.append(f"{q} Q0 {d} {r} {run[q][d]!r} {tag}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_trec(path) -> Run:
    """A run from a TREC run file (``qid Q0 docid rank score tag``; the score ranks, the rank is ignored).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "run.trec")
    >>> write_trec({"q1": {"d1": 0.5, "d2": 0.9}}, p)
    >>> read_trec(p)
    {'q1': {'d2': 0.9, 'd1': 0.5}}
    """
    from pathlib import Path

    run: Run = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            raise ValueError(f"{path}, line {n}: expected 'qid Q0 docid rank score tag', got {line!r}")
        try:
            score = float(parts[4])
        except ValueError:
            raise ValueError(f"{path}, line {n}: score {parts[4]!r} is not a number") from None
        run.setdefault(parts[0], {})[parts[2]] = score
    return run


def top_k_run(run: Run, k: int) -> Run:
    """Each query's top ``k`` (trec_eval order), scores kept."""
    return {q: {d: c[d] for d in metrics.ranked(c, k)} for q, c in run.items()}


def rerank_scores(
    ds: Dataset,
    run: Run,
    scorer: "Scorer",
    cache=None,
    chunk_queries: int = 8,
    show_progress: bool = True,
) -> tuple[Run, dict[str, float], int]:
    """A scorer's logits for every candidate in ``run``.

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

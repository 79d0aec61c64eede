"""``course-lib bench``: every speed lever against the naive loop, in one process and one run.

The *naive loop* is what a first implementation does: ``CrossEncoder.predict`` on each query's K
pairs, fp32, the model's full max length, batches of 32.  Each *variant* reranks the same queries'
first-stage top K; for each the bench reports throughput, per-query latency (p50, p95), NDCG@10,
agreement of its top 10 with the naive loop's (identical in order, identical as a set, mean
overlap), the process's peak resident memory so far, and ``speedup`` = the naive loop's ms/query over
the variant's, measured in the same run.  Timings vary by machine; ratios travel better.

Reading the columns: ``p50_ms`` / ``p95_ms`` are the median and 95th-percentile time per query;
``pairs_per_s`` counts all K candidates of a query, scored or not (a lever that scores fewer pairs looks
faster per pair too); ``peak_mb`` is the process's peak memory *so far*, so later rows inherit earlier rows'
peaks.  Variants that compute exactly what the naive loop computes (bf16 autocast without bf16 units, the
token budget on pairs ``CrossEncoder.predict`` already sorts by length) measure the timing noise: on a shared
2-core machine they land between about 0.85x and 1.2x, so read any speed-up in that band as none (the token
budget sits a little below 1.00 in every shipped record: its own Python batching).  The level rule
(:mod:`course_lib.optimize.levels`) asks for at least 1.2x, and only together with its quality tolerance.

``repeat`` > 1 replays the whole query list that many times, as a stream in which every query comes
back (the workload a pair cache is for): every variant — the naive loop too — sees the same stream,
latencies cover every arrival, and quality and agreement are read from the last pass.  Warm-up calls
use a query no workload contains, so they never prime a cache.

A variant is ``rank(query, texts, first_scores) -> scores`` (higher first; a variant may score only some texts and
give the rest ``-inf``), built by :func:`default_variants` from the levers in
:mod:`course_lib.optimize`.

``host=True`` (``course-lib bench --host``) also measures the *host path* alone — everything a scorer does
before the model's forward pass (capping queries, tokenising, counting truncations, padding, tensors) — on
the same pairs, in pairs per second (:func:`host_bench`): the naive loop's (``CrossEncoder.predict``'s
preprocessing), the course scorer's as it was before it tokenised once (rebuilt here from the same library
calls, for the comparison), and the course scorer's now.  A CPU-only machine measures this work too; on a GPU
it is what sets the pace.

>>> agreement(["a", "b", "c"], ["a", "c", "b"], n=3)
{'identical': False, 'set_identical': True, 'overlap': 1.0}
"""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Callable

import numpy as np

from course_lib import metrics


def agreement(a: list[str], b: list[str], n: int = 10) -> dict:
    """How far two rankings' top ``n`` agree: same order, same set, and the share in common."""
    ta, tb = list(a[:n]), list(b[:n])
    return {"identical": ta == tb, "set_identical": set(ta) == set(tb),
            "overlap": len(set(ta) & set(tb)) / max(1, min(n, len(ta), len(tb)))}


def peak_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


_WARMUP_QUERY = "course-lib bench warm-up query (in no workload)"


def _time_variant(ds, first, rank: Callable, warmup: int = 1, repeat: int = 1) -> tuple[dict, list[float], int]:
    """Rerank every query of ``first`` with ``rank`` (the list ``repeat`` times over); returns (run, per-arrival
    seconds, pairs handled)."""
    qids = sorted(first)
    for q in qids[:warmup]:  # first calls pay one-off costs (allocations, kernel choice)
        ids = metrics.ranked(first[q])
        rank(_WARMUP_QUERY, [ds.doc_text(d) for d in ids], [first[q][d] for d in ids])
    run, secs, n = {}, [], 0
    for q in qids * max(1, repeat):
        ids = metrics.ranked(first[q])
        texts = [ds.doc_text(d) for d in ids]
        t0 = time.perf_counter()
        scores = np.asarray(rank(ds.queries[q], texts, [first[q][d] for d in ids]), dtype=np.float64)
        secs.append(time.perf_counter() - t0)
        n += len(texts)
        run[q] = {d: float(s) for d, s in zip(ids, scores)}
    return run, secs, n


def bench(ds, k: int = 30, variants: dict | None = None, first_stage: str = "dense", show_progress: bool = True,
          naive: Callable | None = None, repeat: int = 1, first: dict | None = None, host: bool = False) -> dict:
    """The naive loop and each variant on ``ds``'s queries (first-stage top ``k``): one JSON-able dict.

    ``first`` is a first-stage run computed elsewhere (``{qid: {doc_id: score}}``, e.g. from
    :func:`course_lib.runs.read_trec`); its top ``k`` for ``ds``'s queries replaces ``first_stage``.
    """
    from tqdm.auto import tqdm

    from course_lib.optimize import naive_rank
    from course_lib.runs import first_stage_run, top_k_run

    if first is None:
        first = first_stage_run(ds, first_stage, k)
    else:
        missing = sorted(set(ds.queries) - set(first))
        if missing:
            raise ValueError(f"the first-stage run has no candidates for {len(missing)} quer(ies), e.g. {missing[:3]}")
        first = top_k_run({q: first[q] for q in ds.queries}, k)
        first_stage = "run file"
    naive = naive or naive_rank()
    variants = variants if variants is not None else default_variants()
    names = ["naive"] + list(variants)
    results = {}
    for name in tqdm(names, desc="bench", disable=not show_progress, file=sys.stderr):
        fn = naive if name == "naive" else variants[name]
        run, secs, n = _time_variant(ds, first, fn, repeat=repeat)
        results[name] = (run, secs, n, peak_mb())
    base_run, base_secs = results["naive"][0], results["naive"][1]
    base_ms = 1000 * float(np.mean(base_secs))

    def row(name):
        run, secs, n, mem = results[name]
        ms = 1000 * float(np.mean(secs))
        agree = [agreement(metrics.ranked(run[q]), metrics.ranked(base_run[q])) for q in sorted(run)]
        return {"name": name, "pairs_per_s": round(n / max(1e-9, sum(secs)), 1), "ms_per_query": round(ms, 1),
                "speedup": round(base_ms / max(1e-9, ms), 2), "p50_ms": round(1000 * float(np.percentile(secs, 50)), 1),
                "p95_ms": round(1000 * float(np.percentile(secs, 95)), 1),
                "ndcg@10": round(metrics.mean(metrics.ndcg(run, ds.qrels, 10)), 4),
                "top10_identical": round(float(np.mean([a["identical"] for a in agree])), 3),
                "top10_set_identical": round(float(np.mean([a["set_identical"] for a in agree])), 3),
                "top10_overlap": round(float(np.mean([a["overlap"] for a in agree])), 3), "peak_mb": round(mem, 1)}

    out = {"dataset": ds.name, "split": ds.split, "k": k, "n_queries": len(first), "repeat": max(1, repeat),
           "first_stage": first_stage,
           "machine": machine(), "naive": row("naive"), "variants": [row(n) for n in variants]}
    if host:
        pairs = [(ds.queries[q], ds.doc_text(d)) for q in sorted(first) for d in metrics.ranked(first[q])]
        out["host"] = host_bench(pairs)
    return out


def _host_before(scorer, pairs) -> int:
    """The course scorer's host path before it tokenised once, rebuilt from the same library calls: queries
    capped, every pair tokenised in full to count truncations, then ``CrossEncoder.predict``'s own
    preprocessing of each batch (which tokenises every pair again, in full, before truncating)."""
    flat, _, _ = scorer.expand_pairs(pairs)
    full = scorer.tokenizer([q for q, _ in flat], [t for _, t in flat], truncation=False)["input_ids"]
    _truncated = sum(1 for ids in full if len(ids) > scorer.max_length)  # what the first tokenisation was for
    return _library_host(scorer.model, flat, scorer.batch_size)


def _library_host(model, pairs, batch_size: int) -> int:
    """``CrossEncoder.predict``'s host work without its forward pass: length order, then ``preprocess`` per batch."""
    order = np.argsort([-(len(q) + len(t)) for q, t in pairs])
    n = 0
    for i in range(0, len(order), batch_size):
        features = model.preprocess([pairs[j] for j in order[i : i + batch_size]])
        n += len(features["input_ids"])
    return n


def host_bench(pairs, scorer=None, min_seconds: float = 2.0) -> dict:
    """Pairs per second of the host path alone (no forward pass) on ``pairs``, three ways, in one run:

    * ``naive loop``: ``CrossEncoder.predict``'s preprocessing (tokenise in full, truncate, pad);
    * ``course scorer, before``: what :class:`~course_lib.scorers.cross_encoder.CrossEncoderScorer` did before
      it tokenised once (:func:`_host_before`);
    * ``course scorer``: :meth:`~course_lib.scorers.cross_encoder.CrossEncoderScorer.host_pass`, today's path.

    Each is repeated until ``min_seconds`` have passed (at least twice); the best pass counts.
    """
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    scorer = scorer or CrossEncoderScorer()
    ways = {"naive loop": lambda: _library_host(scorer.model, pairs, 32),
            "course scorer, before": lambda: _host_before(scorer, pairs),
            "course scorer": lambda: scorer.host_pass(pairs)}
    rows = []
    for name, fn in ways.items():
        fn()  # warm-up (first calls build caches)
        best, spent, runs = float("inf"), 0.0, 0
        while runs < 2 or spent < min_seconds:
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            best, spent, runs = min(best, dt), spent + dt, runs + 1
        rows.append({"name": name, "pairs_per_s": round(len(pairs) / best, 1), "ms_per_1000_pairs": round(1000 * best / len(pairs) * 1000, 1)})
    base = rows[0]["pairs_per_s"]
    for r in rows:
        r["vs_naive"] = round(r["pairs_per_s"] / base, 2)
    return {"pairs": len(pairs), "max_length": scorer.max_length, "tokenizer_threads": os.environ.get("TOKENIZERS_PARALLELISM", "true"),
            "rows": rows}


def machine() -> str:
    """One line naming what the timings were measured on (CPU cores, torch, device)."""
    import platform

    import torch

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{platform.machine()} {os.cpu_count()} cores, {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def default_variants(names=None, device: str = "cpu") -> dict:
    """The course's levers as bench variants (see :mod:`course_lib.optimize`), each loading its model once."""
    from course_lib import optimize

    return optimize.bench_variants(names, device=device)

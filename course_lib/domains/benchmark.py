"""Measuring the domain systems on benchmark collections (notebook 04).

A domain system takes a query and candidate dicts and returns its ranked results; a benchmark
needs a *run* (``{query_id: {doc_id: score}}``) to score with :mod:`course_lib.metrics`.  This module
bridges the two and holds the pieces notebook 04 measures:

* :func:`candidates` — one query's first-stage candidates as the dicts domain systems take
  (id, text, first-stage ``score``, the passage's ``metadata``);
* :func:`system_run` — any ``rank(qid, query, candidates) -> results`` as a run (results in their
  order; candidates a system left out count as not retrieved);
* :func:`rescored_run` — a run re-ordered by per-candidate adjustments (document-type priors);
* :func:`pipeline_runs` — first stage, reranker alone and fused, as named runs;
* :func:`choose_weights` — additive per-group priors (document types) chosen by coordinate ascent
  on *dev* queries;
* :func:`compare_runs` — NDCG@10 of several runs with paired-bootstrap intervals against a base;
* :func:`medquad_specialties` / :func:`split_ids` / :func:`specialty_accuracy` — labelled passages
  for specialty detection (the NIH institute that wrote a MedQuAD answer is its label);
* :func:`medquad_tuning_split` — the 100 MedQuAD train questions held out of every training run, on
  which thresholds (notebook 04) and the course reranker's choices were made.

Example
-------
>>> from course_lib.data import Dataset
>>> ds = Dataset("toy", {"a": {"text": "x", "kind": "k1"}, "b": {"text": "y"}}, {"q": "x?"}, {"q": {"a": 1}})
>>> [(c["id"], c["metadata"]) for c in candidates(ds, {"q": {"a": 0.2, "b": 0.9}}, "q")]
[('b', {}), ('a', {'kind': 'k1'})]
>>> system_run(ds, {"q": {"a": 0.2, "b": 0.9}}, lambda qid, q, cands: cands[::-1])
{'q': {'a': 2.0, 'b': 1.0}}
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Callable

from course_lib import metrics
from course_lib.data import Dataset
from course_lib.domains.medical import MEDQUAD_SOURCE_SPECIALTY
from course_lib.evaluation import paired_bootstrap
from course_lib.fusion import DEFAULT_FUSION_WEIGHT

Run = dict[str, dict[str, float]]
_NOT_METADATA = {"_id", "text", "title"}


def candidates(ds: Dataset, run: Run, qid: str, k: int | None = None) -> list[dict]:
    """The query's candidates in first-stage order: ``{"id", "text", "score", "metadata"}`` (new dicts)."""
    out = []
    for d in metrics.ranked(run[qid], k):
        doc = ds.corpus[d]
        out.append({"id": d, "text": ds.doc_text(d), "score": float(run[qid][d]),
                    "metadata": {key: v for key, v in doc.items() if key not in _NOT_METADATA}})
    return out


def system_run(ds: Dataset, first: Run, rank: Callable, query_text: Callable | None = None) -> Run:
    """Run a domain system over every query of ``first`` and record its order as a run.

    ``rank(qid, query, candidates)`` returns result dicts with ``"id"``, best first;
    ``query_text(qid)`` overrides the query a system reads (default: ``ds.queries[qid]``).
    """
    out: Run = {}
    for q in sorted(first):
        text = query_text(q) if query_text else ds.queries[q]
        ids = [r["id"] for r in rank(q, text, candidates(ds, first, q))]
        if len(set(ids)) != len(ids):
            raise ValueError(f"the system returned a candidate twice for query {q!r}")
        out[q] = {d: float(len(ids) - i) for i, d in enumerate(ids)}
    return out


def rescored_run(run: Run, adjust: Callable[[str], float]) -> Run:
    """``run`` with ``adjust(doc_id)`` added to every score (a prior applied *after* ranking)."""
    return {q: {d: s + adjust(d) for d, s in c.items()} for q, c in run.items()}


def pipeline_runs(ds: Dataset, first: Run, scorer, label: str = "dense", weight: float = DEFAULT_FUSION_WEIGHT,
                  reranker_label: str = "reranker") -> dict[str, Run]:
    """``{label: first, "label → reranker": logits, "label → fused": fused}`` for one first stage.

    ``scorer`` is any :class:`~course_lib.rerank.Scorer` (a
    :class:`~course_lib.caches.CollectionScorer` reads and writes the collection's score cache).
    """
    from course_lib.runs import fused_run, rerank_scores

    scores, _, _ = rerank_scores(ds, first, scorer, show_progress=False)
    return {label: first, f"{label} → {reranker_label}": scores,
            f"{label} → {reranker_label} fused": fused_run(first, scores, weight)}


def choose_weights(run: Run, qrels, group_of: Callable[[str], str], grid=(-0.1, -0.05, 0.0, 0.05, 0.1),
                   k: int = 10, passes: int = 2) -> tuple[dict[str, float], float]:
    """Per-group additive priors (e.g. ``{document type: bonus}``) that maximise mean NDCG@k of
    ``run`` + prior, by coordinate ascent over ``grid`` (ties keep the smaller change; start at 0).

    Choose them on *dev* queries and report them on test: a prior tuned on the test set measures
    nothing.  Returns ``(weights, dev NDCG@k)``.

    >>> run = {"q": {"a": 0.5, "b": 0.6}}
    >>> choose_weights(run, {"q": {"a": 1}}, {"a": "rule", "b": "policy"}.get, grid=(0.0, 0.2))
    ({'policy': 0.0, 'rule': 0.2}, 1.0)
    """
    groups = sorted({group_of(d) for c in run.values() for d in c})
    w = dict.fromkeys(groups, 0.0)

    def score(weights):
        return metrics.mean(metrics.ndcg(rescored_run(run, lambda d: weights[group_of(d)]), qrels, k))

    best = score(w)
    for _ in range(passes):
        changed = False
        for g in groups:
            for v in sorted(grid, key=abs):
                trial = {**w, g: float(v)}
                s = score(trial)
                if s > best + 1e-12:
                    best, w, changed = s, trial, True
        if not changed:
            break
    return w, best


def compare_runs(runs: dict[str, Run], qrels, base: str, k: int = 10, n_resamples: int = 2000) -> list[dict]:
    """NDCG@k of each run, and its paired-bootstrap difference from ``base`` (same queries).

    >>> qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    >>> rows = compare_runs({"x": {"q1": {"a": 1, "b": 0}, "q2": {"a": 1, "b": 0}},
    ...                      "y": {"q1": {"a": 1, "b": 0}, "q2": {"b": 1, "a": 0}}}, qrels, base="x")
    >>> [(r["system"], round(r["ndcg@10"], 3), round(r["diff"], 3)) for r in rows]
    [('x', 0.815, 0.0), ('y', 1.0, 0.185)]
    """
    if base not in runs:
        raise KeyError(f"base {base!r} is not one of the runs")
    qids = sorted(runs[base])
    per = {name: metrics.ndcg(r, qrels, k) for name, r in runs.items()}
    for name, r in runs.items():
        if sorted(r) != qids:
            raise ValueError(f"run {name!r} does not cover the same queries as {base!r}")
    rows = []
    for name in runs:
        a = [per[base][q] for q in qids]
        b = [per[name][q] for q in qids]
        ci = paired_bootstrap(a, b, n_resamples=n_resamples)
        rows.append({"system": name, f"ndcg@{k}": float(sum(b) / len(b)), "diff": ci["diff"], "low": ci["low"],
                     "high": ci["high"]})
    return rows


# -- specialties ------------------------------------------------------------------------------
def medquad_specialties(ds: Dataset) -> dict[str, str]:
    """``doc_id -> specialty``: the NIH institute that wrote the answer (:data:`MEDQUAD_SOURCE_SPECIALTY`),
    ``"general"`` for the encyclopaedic sources (genetics, rare diseases, MedlinePlus, senior health)."""
    return {d: MEDQUAD_SOURCE_SPECIALTY.get(str(doc.get("source", "")), "general") for d, doc in ds.corpus.items()}


def split_ids(ids, fraction: float = 0.2, seed: int = 0) -> tuple[list[str], list[str]]:
    """A fixed random split of ids into (larger, held-out ``fraction``), both sorted.

    >>> split_ids(["a", "b", "c", "d", "e"], 0.4)
    (['a', 'd', 'e'], ['b', 'c'])
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    ids = sorted(ids)
    random.Random(seed).shuffle(ids)
    n = max(1, int(round(len(ids) * fraction)))
    return sorted(ids[n:]), sorted(ids[:n])


def specialty_accuracy(predicted: list[str], gold: list[str]) -> dict:
    """Overall accuracy, macro recall (the mean of per-class recalls: a detector that always says
    the majority class scores 1/n_classes, however large that class), and per gold specialty:
    support, recall and precision of its predictions.

    >>> r = specialty_accuracy(["onc", "general", "onc"], ["onc", "onc", "general"])
    >>> r["accuracy"], r["macro_recall"], r["per_class"]["onc"]
    (0.333, 0.25, {'n': 2, 'recall': 0.5, 'precision': 0.5})
    """
    if len(predicted) != len(gold) or not gold:
        raise ValueError("one prediction per gold label, and at least one")
    n_pred = Counter(predicted)
    per = {}
    for lab, n in sorted(Counter(gold).items()):
        hit = sum(p == g == lab for p, g in zip(predicted, gold))
        per[lab] = {"n": n, "recall": round(hit / n, 3), "precision": round(hit / n_pred[lab], 3) if n_pred[lab] else 0.0}
    acc = sum(p == g for p, g in zip(predicted, gold)) / len(gold)
    macro = sum(v["recall"] for v in per.values()) / len(per)
    return {"accuracy": round(acc, 3), "macro_recall": round(macro, 3), "per_class": per}


def medquad_tuning_split(mq: Dataset, n_tune: int = 100) -> tuple[Dataset, Dataset]:
    """MedQuAD train questions split into (trainable, held-out tuning slice of ``n_tune``), fixed by seed 0.

    The tuning slice is the same for every recipe tried, so trials are compared on one set, and a
    question held out here is never a training query.  Its answers may still appear as *negatives*
    for other questions (they are corpus passages), as test answers may in any dense-mined recipe.
    """
    return mq.split_queries(n_tune / max(1, len(mq.queries)), seed=0)

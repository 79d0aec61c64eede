"""Ranking metrics over a *run* and *qrels*, the way trec_eval defines them.

* run: ``{query_id: {doc_id: score}}`` — higher score ranks higher; ties are broken by
  doc id (descending), as trec_eval does, so results never depend on dict order.
* qrels: ``{query_id: {doc_id: grade}}`` — grade > 0 is relevant; grades are gains for NDCG.

Every function returns the per-query values; :func:`mean` averages them over the queries of
the qrels (a query with no retrieved documents scores 0, as in trec_eval).

Example
-------
>>> run = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}}
>>> qrels = {"q1": {"b": 1}}
>>> mrr(run, qrels, k=10)["q1"]
0.5
>>> round(ndcg(run, qrels, k=10)["q1"], 4)
0.6309
"""

from __future__ import annotations

import math

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]


def ranked(scores: dict[str, float], k: int | None = None) -> list[str]:
    """Doc ids by score descending, ties by doc id descending (trec_eval order)."""
    order = sorted(scores, key=lambda d: (scores[d], d), reverse=True)
    return order if k is None else order[:k]


def _per_query(run: Run, qrels: Qrels, fn) -> dict[str, float]:
    out = {}
    for qid, judged in qrels.items():
        if not any(g > 0 for g in judged.values()):
            continue  # trec_eval skips queries without a relevant document
        out[qid] = fn(run.get(qid, {}), judged)
    return out


def ndcg(run: Run, qrels: Qrels, k: int = 10) -> dict[str, float]:
    """NDCG@k with graded gains (gain = grade, discount = log2(rank + 1))."""

    def one(scores, judged):
        dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked(scores, k)) if judged.get(d, 0) > 0)
        ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        return dcg / idcg if idcg else 0.0

    return _per_query(run, qrels, one)


def mrr(run: Run, qrels: Qrels, k: int = 10) -> dict[str, float]:
    """Reciprocal rank of the first relevant document within the top k (0 if none)."""

    def one(scores, judged):
        for i, d in enumerate(ranked(scores, k)):
            if judged.get(d, 0) > 0:
                return 1.0 / (i + 1)
        return 0.0

    return _per_query(run, qrels, one)


def average_precision(run: Run, qrels: Qrels, k: int | None = None) -> dict[str, float]:
    """Average precision over the whole ranking (or its top k); MAP is its mean."""

    def one(scores, judged):
        n_rel = sum(1 for g in judged.values() if g > 0)
        hits, total = 0, 0.0
        for i, d in enumerate(ranked(scores, k)):
            if judged.get(d, 0) > 0:
                hits += 1
                total += hits / (i + 1)
        return total / n_rel if n_rel else 0.0

    return _per_query(run, qrels, one)


def recall(run: Run, qrels: Qrels, k: int = 10) -> dict[str, float]:
    """Share of the relevant documents found in the top k."""

    def one(scores, judged):
        rel = {d for d, g in judged.items() if g > 0}
        return len(rel & set(ranked(scores, k))) / len(rel)

    return _per_query(run, qrels, one)


def precision(run: Run, qrels: Qrels, k: int = 10) -> dict[str, float]:
    """Relevant documents in the top k, divided by k."""

    def one(scores, judged):
        return sum(1 for d in ranked(scores, k) if judged.get(d, 0) > 0) / k

    return _per_query(run, qrels, one)


def mean(per_query: dict[str, float]) -> float:
    """Mean of per-query values (0.0 for none)."""
    return sum(per_query.values()) / len(per_query) if per_query else 0.0


def summary(run: Run, qrels: Qrels, k: int = 100) -> dict[str, float]:
    """The course's standard table row: ndcg@10, mrr@10, map, recall@10, recall@k, p@10."""
    return {
        "ndcg@10": mean(ndcg(run, qrels, 10)),
        "mrr@10": mean(mrr(run, qrels, 10)),
        "map": mean(average_precision(run, qrels)),
        "recall@10": mean(recall(run, qrels, 10)),
        f"recall@{k}": mean(recall(run, qrels, k)),
        "p@10": mean(precision(run, qrels, 10)),
    }


def per_query_table(run: Run, qrels: Qrels, k: int = 100):
    """A pandas DataFrame indexed by query id: ndcg@10, mrr@10, map, recall@10, recall@k, p@10.

    Its column means are :func:`summary`.
    """
    import pandas as pd

    cols = {
        "ndcg@10": ndcg(run, qrels, 10),
        "mrr@10": mrr(run, qrels, 10),
        "map": average_precision(run, qrels),
        "recall@10": recall(run, qrels, 10),
        f"recall@{k}": recall(run, qrels, k),
        "p@10": precision(run, qrels, 10),
    }
    return pd.DataFrame(cols).sort_index()

import random

import pytest

from course_lib import metrics

pytrec_eval = pytest.importorskip("pytrec_eval")


def random_case(seed):
    rng = random.Random(seed)
    qrels, run = {}, {}
    for q in range(20):
        qid = f"q{q}"
        docs = [f"d{i}" for i in range(60)]
        qrels[qid] = {d: rng.choice([0, 0, 1, 2, 3]) for d in rng.sample(docs, 15)}
        if not any(v > 0 for v in qrels[qid].values()):
            qrels[qid][docs[0]] = 1
        run[qid] = {d: round(rng.random(), 3) for d in rng.sample(docs, 40)}  # rounding makes ties
    return run, qrels


@pytest.mark.parametrize("seed", range(5))
def test_against_trec_eval(seed):
    run, qrels = random_case(seed)
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map", "recall.10", "P.10", "recip_rank"})
    ref = ev.evaluate(run)
    ours = {
        "ndcg_cut_10": metrics.ndcg(run, qrels, 10),
        "map": metrics.average_precision(run, qrels),
        "recall_10": metrics.recall(run, qrels, 10),
        "P_10": metrics.precision(run, qrels, 10),
        "recip_rank": metrics.mrr(run, qrels, 1000),
    }
    for name, per_q in ours.items():
        for qid in qrels:
            assert per_q[qid] == pytest.approx(ref[qid][name], abs=1e-9), (name, qid)


def test_mrr_cutoff():
    run = {"q": {"a": 3, "b": 2, "c": 1}}
    assert metrics.mrr(run, {"q": {"c": 1}}, k=2)["q"] == 0.0
    assert metrics.mrr(run, {"q": {"c": 1}}, k=3)["q"] == pytest.approx(1 / 3)


def test_missing_query_scores_zero_and_unjudged_queries_are_skipped():
    qrels = {"q1": {"a": 1}, "q2": {"b": 0}}
    per_q = metrics.ndcg({}, qrels, 10)
    assert per_q == {"q1": 0.0}

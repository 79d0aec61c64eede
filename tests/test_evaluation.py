import numpy as np
import pytest

from course_lib.data import Dataset
from course_lib.evaluation import RerankingEvaluator, paired_bootstrap
from course_lib.scorers.base import Scorer


@pytest.fixture(scope="module")
def binary_course(course_ds):
    """The course corpus with binary labels (grade 2 only), the setting where oracle >= realistic is a theorem."""
    qrels = {q: {d: int(g == 2) for d, g in j.items()} for q, j in course_ds.qrels.items()}
    return Dataset("course-binary", course_ds.corpus, course_ds.queries, qrels)


def test_oracle_never_below_realistic(binary_course, overlap_scorer):
    rep = RerankingEvaluator(binary_course, overlap_scorer, first_stage="bm25", k=5, cache=False).evaluate(show_progress=False)
    real = rep.per_query["cross-encoder (realistic)"]
    orac = rep.per_query["cross-encoder (oracle)"]
    for metric in ("ndcg@10", "mrr@10", "map", "recall@10"):
        assert (orac[metric] >= real[metric] - 1e-12).all(), metric
    assert (orac["recall@5"] >= real["recall@5"]).all()
    assert rep.recall_ceiling == pytest.approx(rep.per_query["first stage (bm25)"]["recall@5"].mean())
    assert rep.recall_ceiling < 1.0  # K=5 leaves relevant passages out, so the oracle has work to do


def test_bootstrap_interval_contains_observed_difference():
    rng = np.random.default_rng(1)
    a = rng.random(50)
    b = a + rng.normal(0.05, 0.1, 50)
    ci = paired_bootstrap(a, b, n_resamples=1000, seed=3)
    assert ci["low"] <= ci["diff"] <= ci["high"]
    assert ci["diff"] == pytest.approx(float(np.mean(b - a)))
    assert paired_bootstrap(a, a)["low"] == paired_bootstrap(a, a)["high"] == 0.0
    with pytest.raises(ValueError):
        paired_bootstrap(a, b[:3])


def test_evaluator_with_real_model_beats_first_stage_on_course_corpus(course_ds, course_scorer):
    rep = RerankingEvaluator(course_ds, course_scorer, first_stage="bm25", k=20, cache=False, measure_latency=True).evaluate(show_progress=False)
    s = rep.summary
    assert s.loc["cross-encoder (realistic)", "ndcg@10"] > s.loc["first stage (bm25)", "ndcg@10"]
    lat = rep.latency()
    assert lat["queries_timed"] == len(course_ds.queries) and lat["p95_s"] >= lat["p50_s"] > 0
    table = rep.by_k(ks=(5, 10, 20))
    assert list(table["k"]) == [5, 10, 20]
    assert table["recall ceiling (recall@k)"].is_monotonic_increasing
    sweep = rep.fusion_sweep()
    assert sweep.loc[sweep.weight == 0.0, "ndcg@10"].item() == pytest.approx(s.loc["first stage (bm25)", "ndcg@10"], abs=1e-4)


def test_oracle_scores_each_pair_once_and_matches_direct_scoring(binary_course, overlap_scorer):
    seen = []

    class Counting(Scorer):
        def score_pairs(self, pairs):
            seen.extend(pairs)
            return overlap_scorer.score_pairs(pairs)

    rep = RerankingEvaluator(binary_course, Counting(), first_stage="bm25", k=5, cache=False).evaluate(show_progress=False)
    assert len(seen) == len(set(seen))  # the candidates shared with the realistic run are not rescored
    oracle = rep.runs["cross-encoder (oracle)"]
    assert len(seen) == sum(len(c) for c in oracle.values())
    for q, cands in oracle.items():
        docs = list(cands)
        direct = overlap_scorer.score_pairs([(binary_course.queries[q], binary_course.doc_text(d)) for d in docs])
        assert [cands[d] for d in docs] == pytest.approx(list(direct))


# --- fixed in the restructure (failed on 72085cf) ------------------------------------------

def test_a_model_changed_in_memory_is_not_served_the_base_models_cached_scores(
        course_ds, course_scorer, shifted_scorer, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    from dataclasses import replace

    # renamed: the course corpus's own scores ship in eval_cache/, and this test primes a cache of its own
    ds = replace(course_ds.subset(sorted(course_ds.queries)[:4]), name="course-unshipped")
    base = RerankingEvaluator(ds, course_scorer, first_stage="bm25", k=5).evaluate(show_progress=False)
    assert base.n_pairs == 4 * 5 and list((tmp_path / "scores").glob("*-course-unshipped.json.gz"))  # primed
    again = RerankingEvaluator(ds, course_scorer, first_stage="bm25", k=5).evaluate(show_progress=False)
    assert again.n_pairs == 0 and again.realistic == base.realistic  # the base model reads its own scores
    rep = RerankingEvaluator(ds, shifted_scorer, first_stage="bm25", k=5).evaluate(show_progress=False)
    assert rep.n_pairs == base.n_pairs  # every pair scored afresh
    diffs = [rep.realistic[q][d] - base.realistic[q][d] for q in base.realistic for d in base.realistic[q]]
    assert len(diffs) == 20 and np.allclose(diffs, 1.0, atol=1e-3)  # the head's bias was raised by 1

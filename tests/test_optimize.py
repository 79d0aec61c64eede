import numpy as np
import pytest

from course_lib import optimize
from course_lib.optimize import OptimizedReranker, jaccard, pre_filter


def test_jaccard_and_prefilter_never_divide_by_zero_or_empty_the_list():
    assert jaccard("", "") == 0.0 and jaccard("a", "") == 0.0
    cands = [{"text": ""}, {"text": "totally unrelated"}, {"text": "query words here"}]
    kept = pre_filter("query words", cands, min_similarity=0.5, min_keep=2)
    assert len(kept) == 2 and kept[-1] is cands[2]
    assert pre_filter("q", [], min_keep=3) == []


# --- fixed in the restructure (failed on 72085cf) ------------------------------------------

def test_levels_come_from_the_measured_record_and_share_one_loaded_model(course_scorer, overlap_scorer):
    from course_lib.optimize import CascadeScorer, TokenBudgetScorer, measured_levels

    record = measured_levels()
    assert set(record["levels"]) == set(OptimizedReranker.LEVELS) and record["levels"]["accuracy"] == "full"
    opt = OptimizedReranker(scorer=course_scorer, small_scorer=overlap_scorer,
                            levels={"accuracy": "full", "balanced": "cascade (distilled -> full top 5)",
                                    "speed": "distilled + adaptive K (margin 0.1)"})
    assert opt.scorers["accuracy"] is course_scorer
    assert isinstance(opt.scorers["balanced"], CascadeScorer) and opt.scorers["balanced"].full is course_scorer
    assert opt.scorers["speed"] is overlap_scorer and opt.margins["speed"] == 0.1 and opt.margins["accuracy"] is None
    tb = OptimizedReranker(scorer=course_scorer, levels={"accuracy": "full", "balanced": "token budget", "speed": "max length 128"})
    assert isinstance(tb.scorers["balanced"], TokenBudgetScorer) and tb.scorers["speed"].model is course_scorer.model
    assert course_scorer.max_length != 128  # the shared scorer was not reconfigured
    with pytest.raises(ValueError, match="unknown lever"):
        OptimizedReranker(scorer=course_scorer, levels={"balanced": "warp drive"})


def test_adaptive_k_level_reranks_only_close_candidates_and_keeps_positions(course_scorer, overlap_scorer):
    cands = [{"id": f"far{i}", "text": "Bananas grow in warm humid climates.", "score": 0.1} for i in range(3)]
    cands += [{"id": f"on{i}", "text": f"The capital of France is Paris, fact number {i}.", "score": 0.9 - 0.01 * i}
              for i in range(6)]
    opt = OptimizedReranker(scorer=course_scorer, small_scorer=overlap_scorer, optimization_level="speed",
                            levels={"accuracy": "full", "balanced": "full", "speed": "adaptive K (margin 0.2)"})
    out = opt.optimized_rerank("what is the capital of france", cands, top_k=None)
    assert {r["id"] for r in out} == {f"on{i}" for i in range(6)}, "the far candidates are not reranked"
    assert all(cands[r["original_position"]]["id"] == r["id"] for r in out)
    no_scores = [{k: v for k, v in c.items() if k != "score"} for c in cands]
    assert len(opt.optimized_rerank("what is the capital of france", no_scores, top_k=None)) == 9


@pytest.mark.parametrize("level", OptimizedReranker.LEVELS)
@pytest.mark.parametrize("bad, error", [
    ({"query": ""}, ValueError),
    ({"query": "   "}, ValueError),
    ({"top_k": "5"}, TypeError),
    ({"top_k": -1}, ValueError),
    ({"score_threshold": 3.0}, ValueError),
    ({"score_threshold": "0.5"}, TypeError),
])
def test_every_level_rejects_bad_arguments_before_any_work(course_scorer, monkeypatch, level, bad, error):
    opt = OptimizedReranker(scorer=course_scorer, optimization_level=level,
                            levels={"accuracy": "full", "balanced": "token budget", "speed": "adaptive K (margin 0.1)"})
    work = []
    monkeypatch.setattr(optimize, "pre_filter", lambda *a, **k: work.append("pre_filter"))
    for scorer in opt.scorers.values():
        monkeypatch.setattr(scorer, "score_pairs", lambda pairs: work.append("score"))
    args = {"query": "capital of france", "candidates": [{"id": "a", "text": "Paris is the capital of France."}], **bad}
    with pytest.raises(error):
        opt.optimized_rerank(**args)
    assert work == []


def test_a_scorer_without_length_settings_is_refused_clearly(overlap_scorer):
    with pytest.raises(TypeError, match="CrossEncoderScorer"):
        OptimizedReranker(scorer=overlap_scorer)


# -- speed levers ---------------------------------------------------------------------------------
def test_token_budget_scorer_restores_order_and_matches_the_base(course_scorer):
    from course_lib.optimize import TokenBudgetScorer

    texts = ["short one", "a much longer passage " * 20, "mid length passage about heart disease", "x"]
    pairs = [("what is heart disease", t) for t in texts]
    tb = TokenBudgetScorer(course_scorer, max_tokens=256)
    got = tb.score_pairs(pairs)
    assert np.allclose(got, course_scorer.score_pairs(pairs), atol=1e-3), "same logits, caller's order"
    assert sum(tb.last_batches) == len(pairs) and len(tb.last_batches) >= 2, "the long pair gets its own batch"
    with pytest.raises(ValueError):
        TokenBudgetScorer(course_scorer, max_tokens=8)


def test_token_budget_batches_respect_the_budget():
    from course_lib.optimize import TokenBudgetScorer

    s = TokenBudgetScorer.__new__(TokenBudgetScorer)
    s.max_tokens, s.max_batch = 100, 3
    lengths = [10, 90, 20, 20, 20, 30, 50]
    groups = s.batches(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert all(len(g) <= 3 and len(g) * max(lengths[i] for i in g) <= 100 for g in groups)


def test_cascade_rescores_only_the_small_scorers_top(overlap_scorer):
    from course_lib.optimize import CascadeScorer
    from course_lib.rerank import Scorer

    class Reverse(Scorer):  # the "full" model disagrees with the small one
        def __init__(self):
            self.seen = []

        def score_pairs(self, pairs):
            self.seen.extend(pairs)
            return -overlap_scorer.score_pairs(pairs)

    full = Reverse()
    texts = ["a b c", "a b", "a", "z"]
    pairs = [("a b c", t) for t in texts] + [("z", t) for t in texts]
    out = CascadeScorer(overlap_scorer, full, rescore_top=2).score_pairs(pairs)
    assert len(full.seen) == 4, "two per query rescored"
    q1 = out[:4]
    assert q1[1] > q1[0], "the top two are ordered by the full model"
    assert min(q1[:2]) > max(q1[2:]) and q1[2] > q1[3], "the rest follow, in the small model's order"
    with pytest.raises(ValueError):
        CascadeScorer(overlap_scorer, full, rescore_top=0)


def test_adaptive_rank_scores_only_the_close_candidates(overlap_scorer):
    from course_lib.optimize import adaptive_k, adaptive_rank

    assert adaptive_k([], 0.1) == 0 and adaptive_k([0.5, 0.1], 0.1, k_min=5) == 2
    rank = adaptive_rank(overlap_scorer, margin=0.05, k_min=1)
    out = rank("a", ["b", "a", "c"], [0.9, 0.88, 0.2])
    assert overlap_scorer.calls == 1 and out[2] < min(out[:2])


def test_bench_reports_the_naive_loop_and_each_variant(course_ds, overlap_scorer):
    from course_lib.bench import bench
    from course_lib.optimize import scorer_rank

    ds = course_ds.subset(sorted(course_ds.queries)[:4])
    res = bench(ds, k=5, variants={"same": scorer_rank(overlap_scorer)}, first_stage="bm25",
                show_progress=False, naive=scorer_rank(overlap_scorer))
    assert res["n_queries"] == 4 and res["k"] == 5
    row = res["variants"][0]
    assert set(row) >= {"name", "pairs_per_s", "ms_per_query", "speedup", "p50_ms", "p95_ms", "ndcg@10",
                        "top10_identical", "top10_set_identical", "top10_overlap", "peak_mb"}
    assert row["top10_identical"] == 1.0 and row["ndcg@10"] == res["naive"]["ndcg@10"]
    with pytest.raises(ValueError, match="unknown variant"):
        from course_lib.optimize import bench_variants

        bench_variants(["warp drive"])


def test_bench_repeat_replays_the_stream_and_a_pair_cache_scores_each_pair_once(course_ds, overlap_scorer):
    from course_lib.bench import bench
    from course_lib.caches import CachedScorer, LRUScoreCache
    from course_lib.optimize import scorer_rank

    ds = course_ds.subset(sorted(course_ds.queries)[:3])
    counted = CachedScorer(overlap_scorer, LRUScoreCache(maxsize=1000))
    seen = []
    inner = overlap_scorer.score_pairs

    def counting(pairs):
        seen.extend(pairs)
        return inner(pairs)

    overlap_scorer.score_pairs = counting
    res = bench(ds, k=4, variants={"pair cache": scorer_rank(counted)}, first_stage="bm25", show_progress=False,
                naive=lambda q, texts, first: list(first), repeat=3)
    assert res["repeat"] == 3 and res["n_queries"] == 3
    # warm-up (1 query, never primes the cache) + each of 3 queries' 4 pairs once, not three times
    assert len(seen) == 4 + 3 * 4 and len(set(seen)) == len(seen)
    assert res["variants"][0]["pairs_per_s"] > 0

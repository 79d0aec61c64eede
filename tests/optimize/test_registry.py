"""The bench registry's rank functions (course_lib.optimize.registry)."""
def test_adaptive_rank_scores_only_the_close_candidates(overlap_scorer):
    from course_lib.optimize import adaptive_k, adaptive_rank

    assert adaptive_k([], 0.1) == 0 and adaptive_k([0.5, 0.1], 0.1, k_min=5) == 2
    rank = adaptive_rank(overlap_scorer, margin=0.05, k_min=1)
    out = rank("a", ["b", "a", "c"], [0.9, 0.88, 0.2])
    assert overlap_scorer.calls == 1 and out[2] < min(out[:2])

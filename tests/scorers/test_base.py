"""The one way from logits to results (course_lib.scorers.base.rank_results) and the scorer base classes."""
import copy

import numpy as np
import pytest

from course_lib.scorers.base import rank_results


def test_rank_results_ties_are_stable():
    cands = [{"id": str(i), "text": ""} for i in range(6)]
    logits = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
    out = rank_results(cands, logits, [0.5] * 6)
    assert [r["id"] for r in out] == ["1", "3", "5", "0", "2", "4"]
    assert [r["reranked_position"] for r in out] == list(range(6))


def test_rank_results_thresholds_before_the_cut():
    cands = [{"id": c, "text": ""} for c in "abcd"]
    # 'a' sorts first but is below the threshold: the cut keeps the two best of those that pass
    out = rank_results(cands, [3.0, 2.0, 1.0, 0.0], [0.1, 0.9, 0.8, 0.7], top_k=2, score_threshold=0.5)
    assert [r["id"] for r in out] == ["b", "c"]
    assert [r["reranked_position"] for r in out] == [1, 2]  # rank among all candidates, before threshold and cut
    assert rank_results(cands, [3.0, 2.0, 1.0, 0.0], [0.1, 0.9, 0.8, 0.7], top_k=0) == []


def test_rank_results_top_k_none_keeps_all_and_inputs_are_untouched():
    cands = [{"id": c, "text": c * 3, "meta": {"k": i}} for i, c in enumerate("abcde")]
    before = copy.deepcopy(cands)
    logits = np.array([0.5, -1.0, 2.0, 0.0, 1.0])
    probs = 1 / (1 + np.exp(-logits))
    logits_before, probs_before = logits.copy(), probs.copy()
    out = rank_results(cands, logits, probs, top_k=None)
    assert [r["id"] for r in out] == ["c", "e", "a", "d", "b"]
    assert cands == before and np.array_equal(logits, logits_before) and np.array_equal(probs, probs_before)
    assert all(r is not c for r in out for c in cands)
    assert all(cands[r["original_position"]]["id"] == r["id"] for r in out)
    assert out[0]["meta"] == {"k": 2} and out[0]["logit"] == 2.0 and out[0]["relevance_score"] == pytest.approx(probs[2])
    with pytest.raises(ValueError):
        rank_results(cands, logits[:4], probs)


def test_rank_results_order_by_sorts_by_another_score():
    cands = [{"id": c, "text": ""} for c in "abc"]
    logits, probs = [3.0, 2.0, 1.0], [0.95, 0.88, 0.73]
    fused = [0.0, 1.0, 2.0]  # the reverse of the logits' order
    out = rank_results(cands, logits, probs, order_by=fused)
    assert [r["id"] for r in out] == ["c", "b", "a"]
    assert [r["reranked_position"] for r in out] == [0, 1, 2]
    assert [r["logit"] for r in out] == [1.0, 2.0, 3.0]  # each keeps its own logit
    out = rank_results(cands, logits, probs, order_by=fused, top_k=2, score_threshold=0.8)
    assert [(r["id"], r["reranked_position"]) for r in out] == [("b", 1), ("a", 2)]


def test_wrapping_scorers_delegate_and_check_what_they_wrap(overlap_scorer):
    from course_lib.scorers.base import WrappingScorer, require_scorer

    wrapped = WrappingScorer(overlap_scorer)
    pairs = [("red apple", "a red apple"), ("red apple", "a pear")]
    assert wrapped.score_pairs(pairs).tolist() == overlap_scorer.score_pairs(pairs).tolist()
    assert wrapped.fingerprint() == "overlap-v1" and wrapped.probabilities([0.0]).tolist() == [0.5]
    with pytest.raises(TypeError, match="scorer must be a course_lib.scorers.Scorer, got str"):
        WrappingScorer("not a scorer")
    with pytest.raises(TypeError, match="small must be a course_lib.scorers.Scorer or None, got int"):
        require_scorer(3, "small", optional=True)

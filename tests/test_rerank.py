"""AdvancedReranker (course_lib.rerank): new dicts, positions, thresholds, bands, batch reranking, input checks."""
import copy

import pytest

from course_lib.rerank import AdvancedReranker

CANDS = [
    {"id": "a", "text": "bananas are yellow fruit", "source": "x"},
    {"id": "b", "text": "the capital of france is paris", "source": "y"},
    {"id": "c", "text": "paris is a city", "source": "z"},
    {"id": "d", "text": "what is the capital of france and its capital city paris", "source": "w"},
]


Q = "what is the capital of france"


def test_no_mutation_and_new_dicts(overlap_scorer):
    rr = AdvancedReranker(scorer=overlap_scorer)
    before = copy.deepcopy(CANDS)
    out = rr.rerank_with_confidence(Q, CANDS, top_k=4, score_threshold=0.0)
    assert CANDS == before
    assert all(o is not c for o in out for c in CANDS)
    assert out[0]["source"] == "w"  # metadata carried over


def test_positions_recorded_after_sorting(overlap_scorer):
    out = AdvancedReranker(scorer=overlap_scorer).rerank_with_confidence(Q, CANDS, top_k=4, score_threshold=0.0)
    assert [o["id"] for o in out] == ["d", "b", "c", "a"]
    assert [o["reranked_position"] for o in out] == [0, 1, 2, 3]
    assert [o["original_position"] for o in out] == [3, 1, 2, 0]
    assert all(CANDS[o["original_position"]]["id"] == o["id"] for o in out)


def test_threshold_applies_to_probabilities(overlap_scorer):
    rr = AdvancedReranker(scorer=overlap_scorer)
    out = rr.rerank_with_confidence(Q, CANDS, top_k=10, score_threshold=0.5)
    assert all(0.0 <= o["relevance_score"] <= 1.0 for o in out)
    assert all(o["relevance_score"] >= 0.5 for o in out)
    # 'a' shares no word: logit -1 -> p 0.27, dropped; reranked_position still counts it
    assert "a" not in [o["id"] for o in out]
    with pytest.raises(ValueError, match="probability"):
        rr.rerank_with_confidence(Q, CANDS, score_threshold=3.0)


def test_confidence_bands(overlap_scorer):
    out = AdvancedReranker(scorer=overlap_scorer).rerank_with_confidence(Q, CANDS, top_k=4, score_threshold=0.0)
    for o in out:
        p = o["relevance_score"]
        assert o["confidence"] == ("high" if p >= 0.8 else "medium" if p >= 0.5 else "low")


def test_top_k_bounds(overlap_scorer):
    rr = AdvancedReranker(scorer=overlap_scorer)
    assert len(rr.rerank_with_confidence(Q, CANDS, top_k=2, score_threshold=0.0)) == 2
    assert rr.rerank_with_confidence(Q, CANDS, top_k=0, score_threshold=0.0) == []
    assert len(rr.rerank_with_confidence(Q, CANDS, top_k=None, score_threshold=0.0)) == 4


def test_batch_equals_per_query_and_uses_one_pass(overlap_scorer):
    rr = AdvancedReranker(scorer=overlap_scorer)
    qs = [Q, "yellow fruit", "city of paris"]
    lists = [CANDS, CANDS[:2], CANDS[1:]]
    one = [rr.rerank_with_confidence(q, c, top_k=3, score_threshold=0.3) for q, c in zip(qs, lists)]
    calls = overlap_scorer.calls
    batch = rr.batch_rerank(qs, lists, top_k=3, score_threshold=0.3)
    assert overlap_scorer.calls == calls + 1
    assert batch == one


def test_bad_inputs_give_clear_errors(overlap_scorer):
    rr = AdvancedReranker(scorer=overlap_scorer)
    assert rr.rerank_with_confidence(Q, []) == []
    with pytest.raises(ValueError, match="non-empty"):
        rr.rerank_with_confidence("  ", CANDS)
    with pytest.raises(ValueError, match=r"candidates\[1\] has no .text."):
        rr.rerank_with_confidence(Q, [{"text": "ok"}, {"body": "x"}])
    with pytest.raises(TypeError, match="must be a str"):
        rr.rerank_with_confidence(Q, [{"text": 42}])
    with pytest.raises(ValueError, match="duplicate candidate id 'a'"):
        rr.rerank_with_confidence(Q, [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with pytest.raises(ValueError, match="2 queries but 1"):
        rr.batch_rerank([Q, Q], [CANDS])


def test_ties_keep_input_order(overlap_scorer):
    cands = [{"id": str(i), "text": "same words"} for i in range(5)]
    out = AdvancedReranker(scorer=overlap_scorer).rerank_with_confidence("nothing", cands, top_k=5, score_threshold=0.0)
    assert [o["id"] for o in out] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("bad, error", [
    ({"score_threshold": 3.0}, ValueError),
    ({"score_threshold": -0.1}, ValueError),
    ({"score_threshold": "0.5"}, TypeError),
    ({"top_k": "5"}, TypeError),
    ({"top_k": 2.5}, TypeError),
    ({"top_k": -1}, ValueError),
])
def test_batch_rerank_rejects_what_rerank_with_confidence_rejects_before_scoring(overlap_scorer, bad, error):
    rr = AdvancedReranker(scorer=overlap_scorer)
    with pytest.raises(error):
        rr.rerank_with_confidence(Q, CANDS, **bad)
    with pytest.raises(error):
        rr.batch_rerank([Q, "yellow fruit"], [CANDS, CANDS[:2]], **bad)
    assert overlap_scorer.calls == 0  # neither entry point scored anything


def test_batch_rerank_rejects_a_bad_query_or_candidate_list_before_scoring(overlap_scorer):
    rr = AdvancedReranker(scorer=overlap_scorer)
    with pytest.raises(ValueError, match=r"queries\[1\]"):
        rr.batch_rerank([Q, "  "], [CANDS, CANDS])
    with pytest.raises(ValueError, match=r"candidates_list\[1\]\[0\] has no .text."):
        rr.batch_rerank([Q, Q], [CANDS, [{"body": "x"}]])
    assert overlap_scorer.calls == 0

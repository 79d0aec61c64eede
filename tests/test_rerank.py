import copy

import numpy as np
import pytest

from course_lib.rerank import AdvancedReranker, CrossEncoderScorer

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


# --- the real model -------------------------------------------------------------------

def test_real_model_batch_equals_single(course_scorer):
    rr = AdvancedReranker(scorer=course_scorer)
    qs = ["Why is the sky blue?", "What is compound interest?"]
    docs = [
        {"id": "1", "text": "Rayleigh scattering makes the sky look blue."},
        {"id": "2", "text": "Interest on interest makes savings grow exponentially over the years."},
        {"id": "3", "text": "Blue whales are the largest animals."},
    ]
    single = [rr.rerank_with_confidence(q, docs, top_k=3, score_threshold=0.0) for q in qs]
    batch = rr.batch_rerank(qs, [docs, docs], top_k=3, score_threshold=0.0)
    for s, b in zip(single, batch):
        assert [x["id"] for x in s] == [x["id"] for x in b]
        assert np.allclose([x["logit"] for x in s], [x["logit"] for x in b], atol=1e-4)
    assert single[0][0]["id"] == "1" and single[1][0]["id"] == "2"


def test_long_inputs_counted_capped_and_maxp(course_scorer):
    long_q = "word " * 200
    long_doc = "filler text " * 400 + " the answer is here: rayleigh scattering makes the sky blue."
    course_scorer.score_pairs([(long_q, "short doc"), ("why is the sky blue", long_doc)])
    st = course_scorer.last_stats
    assert st.queries_capped == 1 and st.truncated == 1
    maxp = CrossEncoderScorer(course_scorer.model, long_documents="maxp", window_stride=128)
    trunc = course_scorer.score("why is the sky blue", [long_doc])[0]
    best = maxp.score("why is the sky blue", [long_doc])[0]
    assert maxp.last_stats.windows > 1
    assert best > trunc  # the window holding the answer scores higher than the truncated head

import copy

import numpy as np
import pytest

from course_lib.rerank import AdvancedReranker, CrossEncoderScorer, rank_results

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


# --- fixed in the restructure (failed on 72085cf) ------------------------------------------

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


def test_fingerprint_names_the_weights_in_memory_and_the_settings(course_scorer):
    import torch
    from sentence_transformers import CrossEncoder

    from course_lib.course_reranker.modeling import register
    from course_lib.models import course_reranker_path

    register()
    base = course_scorer.fingerprint()
    private = CrossEncoder(str(course_reranker_path()), device="cpu")  # a second copy of the saved model
    twin = CrossEncoderScorer(private)
    assert twin.fingerprint() == base == CrossEncoderScorer(course_scorer.model).fingerprint()
    bias = private[0].auto_model.logit_bias
    saved = bias.detach().clone()
    with torch.no_grad():
        bias.add_(1.0)  # same files on disk, different weights in memory
    assert twin.fingerprint() != base
    with torch.no_grad():
        bias.copy_(saved)
    assert twin.fingerprint() == base
    # settings that change a logit change the fingerprint; a batch size does not
    assert course_scorer.configured(max_length=128).fingerprint() != base
    assert course_scorer.configured(long_documents="maxp").fingerprint() != base
    assert course_scorer.configured(batch_size=4).fingerprint() == base


# --- rank_results: the one way from logits to results ---------------------------------------

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


# --- max length is a setting of the scorer ------------------------------------------------

LONG = (
    "Rayleigh scattering of sunlight by the molecules of the atmosphere makes the sky appear blue "
    "during the day, because shorter wavelengths are scattered far more strongly than longer ones. "
)
LONG_PAIRS = [
    ("why is the sky blue", LONG * 5),
    ("what is compound interest", "Compound interest is interest earned on interest already added to the balance. " * 12),
    ("how do vaccines work", LONG * 6 + "Vaccines train the immune system to recognise a pathogen."),
]


def test_configured_max_length_matches_a_model_loaded_with_that_max_length(course_scorer):
    import torch

    from course_lib.models import load_reranker

    model_max = course_scorer.model.max_seq_length
    short = course_scorer.configured(max_length=128)
    assert short.model is course_scorer.model and short.max_length == 128
    loaded = CrossEncoderScorer(load_reranker(max_length=128))
    assert loaded.max_length == 128 and loaded.model is not course_scorer.model
    a = short.score_pairs(LONG_PAIRS)
    assert short.last_stats.truncated == len(LONG_PAIRS)  # every pair really is longer than 128 tokens
    np.testing.assert_allclose(a, loaded.score_pairs(LONG_PAIRS), atol=1e-4)
    assert course_scorer.model.max_seq_length == model_max  # the shared model was not changed
    full = course_scorer.score_pairs(LONG_PAIRS)
    assert not np.allclose(full, a, atol=1e-3)  # the setting took effect
    direct = course_scorer.model.predict(LONG_PAIRS, activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(full, np.asarray(direct, dtype=np.float32), atol=1e-4)

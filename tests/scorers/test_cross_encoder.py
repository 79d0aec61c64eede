"""The cross-encoder scorer (course_lib.scorers.cross_encoder): real-model batching, long inputs, fingerprints, per-scorer max length."""
import numpy as np

from course_lib.rerank import AdvancedReranker
from course_lib.scorers.cross_encoder import CrossEncoderScorer


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


def test_the_host_path_gives_the_librarys_logits_to_the_bit_and_the_same_truncation_counts(course_scorer, course_ds):
    """Tokenising once, cutting long passages and preparing batches ahead change no logit."""
    import random

    rng = random.Random(3)
    docs = sorted(course_ds.corpus)
    long_text = " ".join(course_ds.doc_text(d) for d in docs[:8])
    pairs = [(course_ds.queries[q], rng.choice([course_ds.doc_text(rng.choice(docs)), long_text]))
             for q in sorted(course_ds.queries)[:12] for _ in range(6)] + [("x " * 100, "short"), ("q", "")]
    for scorer in (course_scorer, course_scorer.configured(max_length=64), course_scorer.configured(prefetch=True)):
        got = scorer.score_pairs(pairs)
        flat, _, _ = scorer.expand_pairs(pairs)
        ref, n_truncated = scorer._predict_with_library(flat)  # CrossEncoder.predict, as the scorer used to call it
        assert np.array_equal(got, ref)
        assert scorer.last_stats.truncated == n_truncated > 0
    assert course_scorer.host_pass(pairs) == len(pairs)


def test_a_failing_producer_fails_the_caller_and_a_caller_that_stops_stops_it():
    import pytest

    from course_lib.scorers.cross_encoder import _ahead

    def make(i):
        if i == 3:
            raise ValueError("bad batch 3")
        return i * 10

    with pytest.raises(ValueError, match="bad batch 3"):
        list(_ahead(make, range(6)))
    made = []
    gen = _ahead(lambda i: made.append(i) or i, range(1000), depth=2)
    assert next(gen) == 0
    gen.close()  # the consumer stops early
    import time

    time.sleep(0.3)
    assert len(made) < 10  # the producer stopped instead of making all 1000

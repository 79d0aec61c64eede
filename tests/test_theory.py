import numpy as np
import pytest

from course_lib import theory


def test_ranking_losses_prefer_correct_order():
    good = theory.ranking_losses([3.0, 0.0, -1.0], [1, 0, 0])
    bad = theory.ranking_losses([-1.0, 0.0, 3.0], [1, 0, 0])
    assert all(good[k] < bad[k] for k in good)
    shifted = theory.ranking_losses([13.0, 10.0, 9.0], [1, 0, 0])
    assert shifted["listwise_softmax_ce"] == pytest.approx(good["listwise_softmax_ce"])
    assert shifted["pairwise_ranknet"] == pytest.approx(good["pairwise_ranknet"])
    with pytest.raises(ValueError):
        theory.ranking_losses([1.0], [1])


def test_pairs_per_query():
    assert theory.pairs_per_query(3, 100) == 300
    with pytest.raises(ValueError):
        theory.pairs_per_query(-1, 5)


def test_attention_map_shapes(course_scorer):
    q, d, m = theory.attention_map("why is the sky blue", "rayleigh scattering of sunlight", course_scorer)
    assert m.shape == (len(q), len(d)) and "sky" in q
    assert np.all(m >= 0) and np.all(m <= 1)


def test_score_both_ways(course_scorer):
    df = theory.score_both_ways([("a cat", "a cat sat"), ("a cat", "stock prices")], scorer=course_scorer)
    assert list(df.columns) == ["query", "text", "bi_cosine", "ce_logit", "ce_probability"]
    assert df.bi_cosine[0] > df.bi_cosine[1] and df.ce_probability[0] > df.ce_probability[1]

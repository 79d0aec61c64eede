"""Length-aware batching (course_lib.scorers.token_budget)."""
import numpy as np
import pytest


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

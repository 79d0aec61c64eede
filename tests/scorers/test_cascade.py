"""The small-model-then-full-model cascade (course_lib.scorers.cascade)."""
import pytest


def test_cascade_rescores_only_the_small_scorers_top(overlap_scorer):
    from course_lib.optimize import CascadeScorer
    from course_lib.scorers.base import Scorer

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

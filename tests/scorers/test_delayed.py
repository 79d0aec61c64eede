"""The slow-on-purpose scorer (course_lib.scorers.delayed)."""
import time

from course_lib.scorers.delayed import DelayedScorer


def test_delays_each_call_records_it_and_keeps_the_inner_scorers_answers(overlap_scorer):
    slow = DelayedScorer(overlap_scorer, delay_s=0.05)
    pairs = [("capital of france", "paris is the capital of france"), ("capital of france", "bananas")]
    t = time.perf_counter()
    got = slow.score_pairs(pairs)
    assert time.perf_counter() - t >= 0.05
    assert got.tolist() == overlap_scorer.score_pairs(pairs).tolist() and slow.calls == [pairs]
    assert slow.fingerprint() == "delayed-overlap-v1" and slow.calibration is overlap_scorer.calibration

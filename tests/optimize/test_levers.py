"""Levers as data, the pre-filter and adaptive K (course_lib.optimize.levers)."""
from course_lib.optimize import jaccard, pre_filter


def test_jaccard_and_prefilter_never_divide_by_zero_or_empty_the_list():
    assert jaccard("", "") == 0.0 and jaccard("a", "") == 0.0
    cands = [{"text": ""}, {"text": "totally unrelated"}, {"text": "query words here"}]
    kept = pre_filter("query words", cands, min_similarity=0.5, min_keep=2)
    assert len(kept) == 2 and kept[-1] is cands[2]
    assert pre_filter("q", [], min_keep=3) == []


def test_levers_are_data_with_names_and_build_scorers(course_scorer, overlap_scorer):
    import pytest

    from course_lib.optimize import CascadeScorer, Lever, TokenBudgetScorer

    assert Lever.of(Lever("cascade", rescore_top=5).to_dict()) == Lever("cascade", rescore_top=5)
    assert Lever(adaptive_margin=0.15).name == "adaptive K (margin 0.15)" and Lever().name == "full"
    scorer, margin = Lever("cascade", rescore_top=3).build(course_scorer, lambda: overlap_scorer)
    assert isinstance(scorer, CascadeScorer) and scorer.small is overlap_scorer and margin is None
    assert isinstance(Lever("token budget").build(course_scorer)[0], TokenBudgetScorer)
    assert Lever("distilled", adaptive_margin=0.1).build(course_scorer, overlap_scorer) == (overlap_scorer, 0.1)
    with pytest.raises(ValueError, match="unknown lever scorer"):
        Lever("warp drive")
    with pytest.raises(ValueError, match="rescore_top"):
        Lever("cascade")
    with pytest.raises(ValueError, match="unknown lever field"):
        Lever.of({"scorer": "full", "speed": "max"})

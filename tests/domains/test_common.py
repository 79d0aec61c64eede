"""What both domain systems share (course_lib.domains.common)."""
import pytest

from course_lib.domains.common import as_str_list, check_ranker, meta, rerank_pool, validate_domain_query
from course_lib.rerank import AdvancedReranker


def test_metadata_is_read_from_the_candidate_then_its_metadata():
    assert meta({"a": 1, "metadata": {"a": 2, "b": 3}}, "a") == 1
    assert meta({"metadata": {"b": 3}}, "b") == 3 and meta({}, "c") is None
    with pytest.raises(TypeError, match="must hold strings"):
        as_str_list(["a", 3], "conditions")


def test_a_filtered_pool_keeps_positions_in_the_callers_list(overlap_scorer):
    cands = [{"id": str(i), "text": t} for i, t in enumerate(["bananas", "capital of france paris", "x", "capital"])]
    out = rerank_pool(AdvancedReranker(scorer=overlap_scorer), "capital of france", cands, [1, 3], 0.0)
    assert [(r["id"], r["original_position"]) for r in out] == [("1", 1), ("3", 3)]
    assert rerank_pool(AdvancedReranker(scorer=overlap_scorer), "q", cands, [], 0.0) == []


def test_bad_rankers_and_queries_fail_before_any_work():
    with pytest.raises(TypeError, match="expected a Ranker"):
        check_ranker(object())
    with pytest.raises(ValueError):
        validate_domain_query("  ", [], 5)
    with pytest.raises(TypeError):
        validate_domain_query("q", [{"text": "a"}], "5")

import pytest

from course_lib import optimize
from course_lib.optimize import OptimizedReranker, jaccard, pre_filter


def test_jaccard_and_prefilter_never_divide_by_zero_or_empty_the_list():
    assert jaccard("", "") == 0.0 and jaccard("a", "") == 0.0
    cands = [{"text": ""}, {"text": "totally unrelated"}, {"text": "query words here"}]
    kept = pre_filter("query words", cands, min_similarity=0.5, min_keep=2)
    assert len(kept) == 2 and kept[-1] is cands[2]
    assert pre_filter("q", [], min_keep=3) == []


# --- fixed in the restructure (failed on 72085cf) ------------------------------------------

def test_levels_are_settings_on_one_loaded_model(course_scorer):
    opt = OptimizedReranker(scorer=course_scorer)
    assert set(opt.scorers) == set(OptimizedReranker.LEVELS)
    for name in OptimizedReranker.LEVELS:
        assert opt.scorers[name].model is course_scorer.model, name
    assert opt.scorers["accuracy"].max_length == course_scorer.max_length
    assert opt.scorers["balanced"].max_length == opt.scorers["speed"].max_length == 128
    assert course_scorer.max_length != 128  # the shared scorer was not reconfigured


@pytest.mark.parametrize("level", OptimizedReranker.LEVELS)
@pytest.mark.parametrize("bad, error", [
    ({"query": ""}, ValueError),
    ({"query": "   "}, ValueError),
    ({"top_k": "5"}, TypeError),
    ({"top_k": -1}, ValueError),
    ({"score_threshold": 3.0}, ValueError),
    ({"score_threshold": "0.5"}, TypeError),
])
def test_every_level_rejects_bad_arguments_before_any_work(course_scorer, monkeypatch, level, bad, error):
    opt = OptimizedReranker(scorer=course_scorer, optimization_level=level)
    work = []
    monkeypatch.setattr(optimize, "pre_filter", lambda *a, **k: work.append("pre_filter"))
    for scorer in opt.scorers.values():
        monkeypatch.setattr(scorer, "score_pairs", lambda pairs: work.append("score"))
    args = {"query": "capital of france", "candidates": [{"id": "a", "text": "Paris is the capital of France."}], **bad}
    with pytest.raises(error):
        opt.optimized_rerank(**args)
    assert work == []


def test_speed_level_original_position_indexes_the_callers_list(course_scorer):
    # three candidates with no word in common with the query come first; the pre-filter drops them
    cands = [{"id": f"off{i}", "text": "Bananas grow in warm humid climates."} for i in range(3)]
    cands += [{"id": f"on{i}", "text": f"The capital of France is Paris, fact number {i}."} for i in range(12)]
    opt = OptimizedReranker(scorer=course_scorer, optimization_level="speed")
    assert len(pre_filter("what is the capital of france", cands)) == 12
    out = opt.optimized_rerank("what is the capital of france", cands, top_k=None)
    assert len(out) == 12 and {r["id"] for r in out} == {c["id"] for c in cands[3:]}
    assert all(cands[r["original_position"]]["id"] == r["id"] for r in out)
    assert min(r["original_position"] for r in out) == 3


def test_speed_level_positions_survive_the_same_dict_passed_twice(course_scorer):
    # mapping back by object identity gave both copies the later position
    d = {"text": "Paris is the capital of France."}
    other = {"text": "Bananas are a yellow fruit."}
    out = OptimizedReranker(optimization_level="speed", scorer=course_scorer).optimized_rerank(
        "capital of France", [d, other, d], top_k=None)
    assert sorted(r["original_position"] for r in out) == [0, 1, 2]


def test_a_scorer_without_length_settings_is_refused_clearly(overlap_scorer):
    with pytest.raises(TypeError, match="CrossEncoderScorer"):
        OptimizedReranker(scorer=overlap_scorer)

"""OptimizedReranker and its measured levels (course_lib.optimize.levels)."""
import pytest

from course_lib import optimize
from course_lib.optimize import OptimizedReranker


def test_levels_come_from_the_measured_record_and_share_one_loaded_model(course_scorer, overlap_scorer):
    from course_lib.optimize import (
        CascadeScorer,
        Lever,
        TokenBudgetScorer,
        measured_levels,
    )

    record = measured_levels()
    assert set(record["levels"]) == set(OptimizedReranker.LEVELS) and record["levels"]["accuracy"] == "full"
    assert {level: Lever.of(spec).name for level, spec in record["specs"].items()} == record["levels"]
    opt = OptimizedReranker(scorer=course_scorer, small_scorer=overlap_scorer,
                            levels={"accuracy": {}, "balanced": {"scorer": "cascade", "rescore_top": 5},
                                    "speed": {"scorer": "distilled", "adaptive_margin": 0.1}})
    assert opt.scorers["accuracy"] is course_scorer
    assert isinstance(opt.scorers["balanced"], CascadeScorer) and opt.scorers["balanced"].full is course_scorer
    assert opt.scorers["speed"] is overlap_scorer and opt.margins["speed"] == 0.1 and opt.margins["accuracy"] is None
    tb = OptimizedReranker(scorer=course_scorer, levels={"accuracy": {}, "balanced": {"scorer": "token budget"}, "speed": {"scorer": "max length 128"}})
    assert isinstance(tb.scorers["balanced"], TokenBudgetScorer) and tb.scorers["speed"].model is course_scorer.model
    assert course_scorer.max_length != 128  # the shared scorer was not reconfigured
    with pytest.raises(ValueError, match="unknown lever scorer"):
        OptimizedReranker(scorer=course_scorer, levels={"balanced": {"scorer": "warp drive"}})


def test_adaptive_k_level_reranks_only_close_candidates_and_keeps_positions(course_scorer, overlap_scorer):
    cands = [{"id": f"far{i}", "text": "Bananas grow in warm humid climates.", "score": 0.1} for i in range(3)]
    cands += [{"id": f"on{i}", "text": f"The capital of France is Paris, fact number {i}.", "score": 0.9 - 0.01 * i}
              for i in range(6)]
    opt = OptimizedReranker(scorer=course_scorer, small_scorer=overlap_scorer, optimization_level="speed",
                            levels={"accuracy": {}, "balanced": {}, "speed": {"adaptive_margin": 0.2}})
    out = opt.optimized_rerank("what is the capital of france", cands, top_k=None)
    assert {r["id"] for r in out} == {f"on{i}" for i in range(6)}, "the far candidates are not reranked"
    assert all(cands[r["original_position"]]["id"] == r["id"] for r in out)
    no_scores = [{k: v for k, v in c.items() if k != "score"} for c in cands]
    assert len(opt.optimized_rerank("what is the capital of france", no_scores, top_k=None)) == 9


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
    opt = OptimizedReranker(scorer=course_scorer, optimization_level=level,
                            levels={"accuracy": {}, "balanced": {"scorer": "token budget"}, "speed": {"adaptive_margin": 0.1}})
    work = []
    monkeypatch.setattr(optimize, "pre_filter", lambda *a, **k: work.append("pre_filter"))
    for scorer in opt.scorers.values():
        monkeypatch.setattr(scorer, "score_pairs", lambda pairs: work.append("score"))
    args = {"query": "capital of france", "candidates": [{"id": "a", "text": "Paris is the capital of France."}], **bad}
    with pytest.raises(error):
        opt.optimized_rerank(**args)
    assert work == []


def test_a_scorer_without_length_settings_is_refused_clearly(overlap_scorer):
    with pytest.raises(TypeError, match="CrossEncoderScorer"):
        OptimizedReranker(scorer=overlap_scorer)

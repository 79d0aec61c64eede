import pytest

from course_lib.pipeline import TwoStageRetriever
from course_lib.retrieval import BM25Retriever


def test_two_stage_pipeline_carries_both_stages(course_ds, overlap_scorer):
    pipe = TwoStageRetriever(BM25Retriever(course_ds.corpus), overlap_scorer, k=20, m=5, fusion_weight=1.0)
    res = pipe.search("what is the capital of france")
    assert len(res.results) <= 5 and res.n_candidates <= 20
    for key in ("first_stage_score", "first_stage_rank", "logit", "relevance_score", "rerank_rank", "fused_score", "rank"):
        assert key in res.results[0]
    # weight 1.0: the order is the cross-encoder's
    assert [r["rerank_rank"] for r in res.results] == sorted(r["rerank_rank"] for r in res.results)
    pipe0 = TwoStageRetriever(BM25Retriever(course_ds.corpus), overlap_scorer, k=20, m=5, fusion_weight=0.0)
    res0 = pipe0.search("what is the capital of france")
    assert [r["first_stage_rank"] for r in res0.results] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        pipe.search("")

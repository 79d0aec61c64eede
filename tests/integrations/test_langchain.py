import pytest
from langchain_core.documents import Document

from course_lib.integrations.langchain import (
    CourseCrossEncoder,
    ScoredCrossEncoderReranker,
    create_production_reranking_pipeline,
)


def test_compressor_keeps_scores_and_order(overlap_scorer):
    docs = [Document(page_content=t, metadata={"k": i}) for i, t in enumerate(["a b", "a b c d", "z"])]
    comp = ScoredCrossEncoderReranker(reranker=overlap_scorer, top_n=2)
    out = comp.compress_documents(docs, "a b c d")
    assert [d.metadata["k"] for d in out] == [1, 0]
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert "relevance_score" not in docs[0].metadata  # inputs untouched


def test_stock_interface_adapter(overlap_scorer):
    s = CourseCrossEncoder(overlap_scorer).score([("a b", "a b"), ("a b", "z")])
    assert s[0] > s[1]


def test_production_pipeline_offline(tmp_path, course_ds, course_scorer):
    ids = sorted(course_ds.corpus)
    docs = [Document(page_content=course_ds.doc_text(d), metadata={"topic": course_ds.corpus[d]["topic"]}, id=d) for d in ids]
    retriever = create_production_reranking_pipeline(docs, str(tmp_path / "lc"), k=20, top_n=5, reranker=course_scorer)
    out = retriever.invoke("How do bees make honey?")
    assert 1 <= len(out) <= 5
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True)
    assert out[0].id in course_ds.qrels["q06"] and course_ds.qrels["q06"][out[0].id] == 2
    # reopen without documents: the store persisted
    again = create_production_reranking_pipeline(None, str(tmp_path / "lc"), k=20, top_n=5, reranker=course_scorer)
    assert [d.id for d in again.invoke("How do bees make honey?")] == [d.id for d in out]


# --- fixed in the restructure (failed on 72085cf) ------------------------------------------

@pytest.mark.parametrize("query", ["", "   "])
def test_compressor_rejects_an_empty_query(overlap_scorer, query):
    docs = [Document(page_content="a b"), Document(page_content="c")]
    comp = ScoredCrossEncoderReranker(reranker=overlap_scorer, top_n=2)
    with pytest.raises(ValueError):
        comp.compress_documents(docs, query)
    assert overlap_scorer.calls == 0

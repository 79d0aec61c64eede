import pytest

from course_lib.retrieval import (
    BM25Retriever,
    ChromaStore,
    DenseRetriever,
    HybridRetriever,
)


@pytest.fixture(scope="module")
def small(course_ds):
    ids = sorted(course_ds.corpus)[:60]
    return {d: course_ds.corpus[d] for d in ids}


def test_chroma_store_survives_reopen_and_upsert_is_idempotent(tmp_path, small):
    store = ChromaStore(tmp_path / "db", collection="test")
    assert store.add_corpus(small, show_progress=False) == len(small)
    hits = store.retrieve("interest rates and inflation", k=5)
    del store
    reopened = ChromaStore(tmp_path / "db", collection="test")
    assert len(reopened) == len(small)
    assert reopened.add_corpus(small, show_progress=False) == 0  # nothing re-embedded
    again = reopened.retrieve("interest rates and inflation", k=5)
    assert [h["id"] for h in again] == [h["id"] for h in hits]
    assert [h["rank"] for h in again] == [1, 2, 3, 4, 5]
    assert all(-1.0 <= h["score"] <= 1.0 for h in again)
    assert again[0]["metadata"]["topic"] in {"general", "health", "finance", "regulation", "technology"}


def test_chroma_and_exact_dense_agree(tmp_path, small):
    store = ChromaStore(tmp_path / "db2", collection="test")
    store.add_corpus(small, show_progress=False)
    dense = DenseRetriever(small)
    q = "how does a vaccine work"
    assert [h["id"] for h in store.retrieve(q, 3)] == [h["id"] for h in dense.retrieve(q, 3)]


def test_bm25_and_hybrid(course_ds):
    bm25 = BM25Retriever(course_ds.corpus)
    hits = bm25.retrieve("compound interest", k=5)
    assert hits[0]["id"].startswith("fin-")
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    hyb = HybridRetriever([DenseRetriever(course_ds.corpus), bm25])
    h2 = hyb.retrieve("compound interest", k=5)
    assert len(h2) == 5 and h2[0]["score"] >= h2[-1]["score"]


def test_one_first_stage_interface_search_retrieve_and_run_agree(course_ds):
    from course_lib.retrieval import FirstStage, first_stage
    from course_lib.runs import first_stage_run

    ds = course_ds.subset(sorted(course_ds.queries)[:4])
    for kind in ("dense", "bm25", "hybrid"):
        stage = first_stage(ds.corpus, kind, cache_key=ds.name)
        assert isinstance(stage, FirstStage)
        run = first_stage_run(ds, kind, k=10)  # what the evaluation runs use: the same object, no second fusion
        assert run == stage.run(ds.queries, 10)
        q = sorted(ds.queries)[0]
        hits = stage.retrieve(ds.queries[q], 10)
        assert {h["id"]: h["score"] for h in hits} == run[q] and [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
        assert [h["score"] for h in hits] == sorted(run[q].values(), reverse=True)
        assert hits[0]["text"] == ds.doc_text(hits[0]["id"])
    with pytest.raises(ValueError, match="first stage must be one of"):
        first_stage(ds.corpus, "sparse")
    with pytest.raises(ValueError, match="k must be a positive int"):
        BM25Retriever(ds.corpus).retrieve("q", 0)
    with pytest.raises(TypeError, match="fuses FirstStage retrievers"):
        HybridRetriever([object()])

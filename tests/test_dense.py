import numpy as np
import pytest

from course_lib.dense import DenseIndex


def test_search_vectors_is_exact_best_first_and_breaks_ties_by_doc_order():
    emb = np.eye(4, dtype=np.float32)[[0, 1, 1, 2, 3]]  # d1 and d2 are identical
    index = DenseIndex(["d0", "d1", "d2", "d3", "d4"], emb)
    hits = index.search_vectors(np.array([[0.0, 0.8, 0.0, 0.6]], dtype=np.float32), k=3)[0]
    assert [d for d, _ in hits] == ["d1", "d2", "d4"]
    assert [s for _, s in hits] == pytest.approx([0.8, 0.8, 0.6])
    assert len(index.search_vectors(emb[:1], k=50)[0]) == 5  # k larger than the index
    assert index.similarity(emb[4], ["d4", "d0"]).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError):
        DenseIndex(["d0"], emb)


def test_cosines_are_exact_so_copies_tie_on_every_cpu():
    from course_lib.dense import exact_cosines, top_k

    rng = np.random.default_rng(0)
    docs = rng.normal(size=(50, 384)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    docs[7] = docs[3]  # a copy of one passage
    q = rng.normal(size=(2, 384)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    index = DenseIndex([f"d{i}" for i in range(50)], docs)
    sims = exact_cosines(q, index.fixed, index.bits)
    assert np.abs(sims - q.astype(np.float64) @ docs.T.astype(np.float64)).max() < 1e-6  # the cosine, to 1e-6
    assert (sims[:, 3] == sims[:, 7]).all()  # equal vectors, equal scores: no float noise to break the tie
    # the sum is exact, so any order of adding gives the same bits (what another CPU's BLAS does)
    perm = rng.permutation(384)
    assert (exact_cosines(q[:, perm], index.fixed[:, perm], index.bits) == sims).all()
    assert top_k(np.array([0.2, 0.5, 0.5, 0.1]), 1).tolist() == [1]


def test_search_reads_query_vectors_from_the_cache(tmp_path, monkeypatch):
    from course_lib.caches import QueryEmbeddingCache
    from course_lib.dense import encode_queries

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))

    class Embedder:  # counts forward passes
        calls = 0

        def encode(self, texts, **kw):
            Embedder.calls += 1
            return np.ones((len(texts), 4), dtype=np.float32) / 2

        def parameters(self):
            return iter(())

        max_seq_length = 16

    emb = Embedder()
    first = encode_queries(["q1", "q2", "q1"], emb)
    assert first.shape == (3, 4) and Embedder.calls == 1
    again = encode_queries(["q2", "q1"], emb)
    assert Embedder.calls == 1 and (again == first[:2]).all()  # read back, no forward pass
    assert len(QueryEmbeddingCache.for_embedder(emb)) == 2

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

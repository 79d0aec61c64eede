from course_lib.pipeline import TwoStageRetriever
from course_lib.retrieval import BM25Retriever
from course_lib.widgets import make_explorer, results_table


def test_results_table_and_explorer_build_headless(course_ds, overlap_scorer):
    pipe = TwoStageRetriever(BM25Retriever(course_ds.corpus), overlap_scorer, k=10, m=3)
    t = results_table(pipe, "compound interest savings", k=10, m=3, qrels=course_ds.qrels["q19"])
    assert len(t) == 3 and list(t["rank"]) == [1, 2, 3] and "label" in t
    strict = results_table(pipe, "compound interest savings", k=10, m=3, threshold=0.99)
    assert len(strict) <= 3 and pipe.score_threshold == 0.0  # threshold restored
    w = make_explorer(pipe)
    assert len(w.children) == 3

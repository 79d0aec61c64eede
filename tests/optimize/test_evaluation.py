"""Notebook 05's tables (course_lib.optimize.evaluation): quality at a depth and the pre-filter sweep."""
from course_lib.optimize import pre_filter_sweep, quality_at_k
from course_lib.runs import first_stage_run


def test_quality_at_k_and_the_sweep_measure_what_they_say(course_ds, overlap_scorer):
    ds = course_ds.subset(sorted(course_ds.queries)[:5])
    first = first_stage_run(ds, "bm25", k=20)
    row = quality_at_k(ds, first, overlap_scorer, 10, label="K=10")
    assert row["setting"] == "K=10" and row["K"] == 10 and 0 < row["pairs per query"] <= 10
    deeper = quality_at_k(ds, first, overlap_scorer, 20)
    assert deeper["recall ceiling"] >= row["recall ceiling"]  # a deeper cut never recalls less
    rows = pre_filter_sweep(ds, first, overlap_scorer, settings=((0.0, 20), (0.5, 2)), k=20)
    assert rows[0]["pairs per query"] >= rows[1]["pairs per query"] >= 2  # the filter drops, min_keep holds
    assert [r["min keep"] for r in rows] == [20, 2]

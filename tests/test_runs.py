from course_lib.runs import fused_run


def test_fused_run_weight_one_orders_like_reranker():
    first = {"q": {"a": 0.9, "b": 0.5, "c": 0.1}}
    rer = {"q": {"a": -1.0, "b": 2.0, "c": 0.0}}
    f = fused_run(first, rer, 1.0)["q"]
    assert sorted(f, key=f.get, reverse=True) == ["b", "c", "a"]

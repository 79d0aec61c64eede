import numpy as np
import pytest

from course_lib.fusion import rrf, zscore, zscore_fuse


def test_zscore_constant_input():
    assert zscore([2, 2, 2]) == [0.0, 0.0, 0.0]


def test_fusion_endpoints():
    ce, fs = [3.0, 1.0, 2.0], [0.1, 0.9, 0.5]
    assert np.argmax(zscore_fuse(ce, fs, 1.0)) == 0
    assert np.argmax(zscore_fuse(ce, fs, 0.0)) == 1
    with pytest.raises(ValueError):
        zscore_fuse(ce, fs, 1.5)
    with pytest.raises(ValueError):
        zscore_fuse(ce, fs[:2], 0.5)


def test_fusion_is_invariant_to_affine_rescaling_of_logits():
    ce, fs = [3.0, 1.0, 2.0, -1.0], [0.1, 0.9, 0.5, 0.3]
    a = zscore_fuse(ce, fs, 0.4)
    b = zscore_fuse([2 * x + 7 for x in ce], fs, 0.4)
    assert np.allclose(a, b)


def test_rrf_prefers_consensus():
    s = rrf([["a", "b", "c"], ["b", "a", "d"]])
    assert max(s, key=s.get) in {"a", "b"} and s["a"] == s["b"] and s["c"] < s["a"]


def test_default_fusion_weight_is_the_recorded_selection():
    import json

    from course_lib.fusion import DEFAULT_FUSION_WEIGHT
    from course_lib.models import course_reranker_path

    report = json.loads((course_reranker_path() / "calibration_report.json").read_text())
    sel = report["fusion_weight_selection"]
    assert DEFAULT_FUSION_WEIGHT == sel["weight"] and sel["weight"] in sel["safe_weights"]

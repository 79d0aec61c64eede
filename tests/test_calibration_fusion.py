import numpy as np
import pytest

from course_lib.calibration import Calibration, expected_calibration_error, reliability_table
from course_lib.fusion import rrf, zscore, zscore_fuse


def test_platt_recovers_a_known_mapping():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, 20000)
    p_true = 1 / (1 + np.exp(-(0.5 * z - 1.0)))
    y = rng.random(z.size) < p_true
    cal = Calibration.fit(z, y)
    assert cal.a == pytest.approx(0.5, abs=0.05) and cal.b == pytest.approx(-1.0, abs=0.1)
    assert expected_calibration_error(cal.probabilities(z), y) < expected_calibration_error(Calibration().probabilities(z), y)


def test_calibration_needs_both_classes():
    with pytest.raises(ValueError, match="both"):
        Calibration.fit([1.0, 2.0], [1, 1])


def test_ece_of_perfect_predictions_is_zero():
    assert expected_calibration_error([0.0, 1.0, 1.0], [0, 1, 1]) == 0.0
    assert sum(r[2] for r in reliability_table([0.1, 0.9, 0.5], [0, 1, 1])) == 3


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


def test_select_fusion_weight_is_best_on_average_among_safe_weights():
    from course_lib.course_reranker.selection import select_fusion_weight

    dev = ({0.0: 0.60, 0.5: 0.70, 1.0: 0.72}, 0.60)
    guard = ({0.0: 0.40, 0.5: 0.398, 1.0: 0.35}, 0.40)
    out = select_fusion_weight({"dev": dev, "other": guard}, tolerance=0.005)
    assert out["weight"] == 0.5 and out["safe_weights"] == [0.0, 0.5]
    assert out["gain_by_collection"] == {"dev": 0.1, "other": -0.002}
    # without the guard the in-domain best wins
    assert select_fusion_weight({"dev": dev})["weight"] == 1.0
    # a weight that wins on average but is unsafe somewhere is not chosen
    tempting = ({0.0: 0.60, 0.5: 0.61, 1.0: 0.90}, 0.60)
    assert select_fusion_weight({"dev": tempting, "other": guard})["weight"] == 0.5
    unsafe = select_fusion_weight({"other": ({0.0: 0.30, 0.5: 0.20, 1.0: 0.10}, 0.40)})
    assert unsafe["weight"] == 0.0 and unsafe["safe_weights"] == []


def test_default_fusion_weight_is_the_recorded_selection():
    import json

    from course_lib.fusion import DEFAULT_FUSION_WEIGHT
    from course_lib.models import course_reranker_path

    report = json.loads((course_reranker_path() / "calibration_report.json").read_text())
    sel = report["fusion_weight_selection"]
    assert DEFAULT_FUSION_WEIGHT == sel["weight"] and sel["weight"] in sel["safe_weights"]

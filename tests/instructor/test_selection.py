from course_lib.instructor.selection import select_fusion_weight


def test_select_fusion_weight_is_best_on_average_among_safe_weights():
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

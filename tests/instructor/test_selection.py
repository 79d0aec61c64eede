from course_lib.instructor.selection import select_fusion_weight


def test_the_mean_rule_is_best_on_average_among_safe_weights():
    dev = ({0.0: 0.60, 0.5: 0.70, 1.0: 0.72}, 0.60)
    guard = ({0.0: 0.40, 0.5: 0.398, 1.0: 0.35}, 0.40)
    out = select_fusion_weight({"dev": dev, "other": guard}, tolerance=0.005, rule="mean")
    assert out["weight"] == 0.5 and out["safe_weights"] == [0.0, 0.5]
    assert out["gain_by_collection"] == {"dev": 0.1, "other": -0.002}
    # without the guard the in-domain best wins
    assert select_fusion_weight({"dev": dev}, rule="mean")["weight"] == 1.0
    # a weight that wins on average but is unsafe somewhere is not chosen
    tempting = ({0.0: 0.60, 0.5: 0.61, 1.0: 0.90}, 0.60)
    assert select_fusion_weight({"dev": tempting, "other": guard}, rule="mean")["weight"] == 0.5
    unsafe = select_fusion_weight({"other": ({0.0: 0.30, 0.5: 0.20, 1.0: 0.10}, 0.40)}, rule="mean")
    assert unsafe["weight"] == 0.0 and unsafe["safe_weights"] == []


def test_the_max_min_rule_follows_the_worst_set_and_leans_to_the_first_stage_within_noise():
    dev = ({0.0: 0.60, 0.4: 0.66, 0.5: 0.70, 0.6: 0.74, 0.8: 0.78}, 0.60)      # in domain: more reranker, better
    ood = ({0.0: 0.40, 0.4: 0.420, 0.5: 0.4215, 0.6: 0.415, 0.8: 0.398}, 0.40)  # unseen text: peaks, then falls
    out = select_fusion_weight({"dev": dev, "ood": ood}, tolerance=0.0)
    assert out["weight"] == 0.4 and out["criterion"] == "max-min"  # 0.4's worst gain is within 0.002 of 0.5's, the best
    assert out["worst_gain"] == 0.02 and out["gain_by_collection"] == {"dev": 0.06, "ood": 0.02}
    assert select_fusion_weight({"dev": dev, "ood": ood}, tolerance=0.0, near=0.0)["weight"] == 0.5
    assert select_fusion_weight({"dev": dev, "ood": ood}, tolerance=0.0, rule="mean")["weight"] == 0.6

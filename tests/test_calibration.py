import numpy as np
import pytest

from course_lib.calibration import (
    Calibration,
    expected_calibration_error,
    reliability_table,
)


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

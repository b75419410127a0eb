import numpy as np
import pytest

from inference.calibration import calibrate, f1_optimal_threshold


def test_f1_threshold_separates_separable_scores():
    normal, anomalous = np.array([1.0, 1.5, 2.0]), np.array([3.0, 4.0])
    threshold = f1_optimal_threshold(normal, anomalous)
    assert 2.0 < threshold < 3.0


def test_f1_threshold_maximises_f1_on_overlapping_scores():
    rng = np.random.default_rng(0)
    normal, anomalous = rng.normal(0, 1, 200), rng.normal(2, 1, 100)
    threshold = f1_optimal_threshold(normal, anomalous)

    def f1(t):
        tp = (anomalous > t).sum()
        fp = (normal > t).sum()
        return 2 * tp / (2 * tp + fp + (anomalous <= t).sum())

    best = max(f1(t) for t in np.concatenate([normal, anomalous]))
    assert f1(threshold) == pytest.approx(best)


def test_quantile_threshold_without_anomalies():
    normal = np.arange(100, dtype=float)
    calibration = calibrate(normal, normal_quantile=0.95)
    assert calibration.method == "normal_quantile"
    assert calibration.threshold == pytest.approx(np.quantile(normal, 0.95))


def test_normalisation_puts_threshold_at_half_and_is_monotonic_and_clipped():
    calibration = calibrate([1.0, 2.0, 3.0], [6.0, 9.0])
    assert calibration.method == "f1"
    assert calibration.normalise(calibration.threshold) == pytest.approx(0.5)
    values = calibration.normalise(np.linspace(-100, 100, 50))
    assert np.all(np.diff(values) >= 0)
    assert values.min() == 0.0 and values.max() == 1.0


def test_calibration_needs_normal_images():
    with pytest.raises(ValueError, match="normal"):
        calibrate([], [1.0])

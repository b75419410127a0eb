"""Which sensors are judged on their movement inside the window instead of their level, and which
time features the residual forest may read: rules decided from the training rows alone."""

from __future__ import annotations

import numpy as np

from pipelines.kinds.residual_forest.training import covered_time_features
from pipelines.sensors.graphs import RowWindow, slow_sensor_mask, slow_share, swings
from inference.sensors.scorer import time_features

LENGTH = 30


def _sensors(rows: int = 400, seed: int = 0) -> np.ndarray:
    """Columns: white noise, a random walk (a wandering temperature), a fast cycle seen many times."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=rows)
    walk = np.cumsum(rng.normal(size=rows))
    cycle = np.sin(2 * np.pi * np.arange(rows) / 80) + 0.1 * rng.normal(size=rows)
    x = np.column_stack([noise, walk, cycle])
    return (x - x.mean(axis=0)) / x.std(axis=0)


def test_white_noise_keeps_little_variance_in_its_moving_average_and_a_wander_most():
    share = slow_share([_sensors()], 3, LENGTH)
    assert share[0] < 0.1
    assert share[1] > 0.5  # above the rule's threshold: most of its variance is slower than the window


def test_a_cycle_seen_many_times_swings_often_and_keeps_its_level():
    x = _sensors()
    counts = swings([x], 3, LENGTH)
    assert counts[2] >= 8  # five cycles: about ten swings
    assert slow_share([x], 3, LENGTH)[2] > 0.5  # slow at this length ...
    mask = slow_sensor_mask([x], 3, 5, LENGTH, 0.5)
    assert mask.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]  # ... but only the wander is centred; time features never


def test_threshold_one_turns_centring_off():
    assert not slow_sensor_mask([_sensors()], 3, 3, LENGTH, 1.0).any()


def test_offsets_between_recordings_are_not_slowness():
    rng = np.random.default_rng(1)
    runs = [rng.normal(size=(200, 1)) + offset for offset in (-5.0, 0.0, 5.0)]  # three engines, three levels
    assert slow_share(runs, 1, LENGTH)[0] < 0.1


def test_a_constant_sensor_with_float_rounding_is_not_slow():
    constant = np.full((300, 1), 518.67)
    standardised = (constant - constant.mean()) / 0.52  # ~1e-13 rounding noise, as a scaler leaves it
    assert slow_share([standardised], 1, LENGTH)[0] == 0.0


def test_prepared_rows_take_slow_columns_about_their_trailing_mean():
    run = np.column_stack([np.arange(10.0), np.arange(10.0)])
    reading = RowWindow(length=4, scored_rows=2, slow=(1.0, 0.0))
    prepared = reading.prepared(run)
    assert reading.context == 5
    assert prepared.shape == (7, 2)
    np.testing.assert_allclose(prepared[:, 0], 1.5)  # t − mean(t−3 … t) for a ramp
    np.testing.assert_allclose(prepared[:, 1], np.arange(3.0, 10.0))


def test_time_features_are_used_only_when_training_covers_their_cycle():
    day = np.arange(0, 2 * 86_400, 600.0)  # two days: every hour seen, not every weekday
    rows = np.concatenate([np.zeros((day.size, 2)), time_features(day)], axis=1)
    assert covered_time_features(rows, 2) == [2, 3]
    weeks = np.arange(0, 15 * 86_400, 600.0)
    rows = np.concatenate([np.zeros((weeks.size, 2)), time_features(weeks)], axis=1)
    assert covered_time_features(rows, 2) == [2, 3, 4, 5]
    minutes = np.arange(0, 400.0)  # a 7-minute recording (SKAB): neither
    rows = np.concatenate([np.zeros((minutes.size, 2)), time_features(minutes)], axis=1)
    assert covered_time_features(rows, 2) == []

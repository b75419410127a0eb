"""Sensor windows at the edges of float arithmetic: every reading the model cannot score is refused by
row and sensor, and nothing NaN or infinite reaches an answer."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from inference.calibration import Calibration
from inference.errors import BadRequest, BundleError
from inference.input_statistics import window_statistics
from inference.model import check_threshold
from inference.sensors.scorer import AssetSpec, SeriesScorer, causal_mean
from inference.sensors.window import parse_window

HUGE = int("9" * 400)
SENSORS = ("flow", "pressure")


class SquaresGraph:
    """An ONNX session stand-in: per-sensor squared standardised readings of the last row, in float32."""

    def __init__(self, poison: float | None = None):
        self.poison = poison

    def get_inputs(self):
        return [SimpleNamespace(name="window")]

    def get_outputs(self):
        return [SimpleNamespace(name="errors")]

    def run(self, names, feeds):
        with np.errstate(over="ignore"):
            errors = np.square(feeds["window"][:, -1, :]).astype(np.float32)
        if self.poison is not None:
            errors[:, 0] = self.poison
        return [errors]


def scorer(graph=None, scale=(1.0, 1.0), smoothing=1) -> SeriesScorer:
    spec = AssetSpec(SENSORS, SENSORS, (0.0, 0.0), scale, 2, "errors", "sum", smoothing=smoothing)
    return SeriesScorer(spec, graph or SquaresGraph(), Calibration(2.0, 0.0, 4.0, "normal_quantile", 10, 0))


def rows(count=10):
    return [[1.0 + 0.1 * i, 2.0 - 0.1 * i] for i in range(count)]


def test_an_integer_too_large_for_a_float_is_a_bad_request_naming_where_it_is():
    window = rows()
    window[3][1] = HUGE
    with pytest.raises(BadRequest, match=r"window row 3, column 1: 9{12}\.\.\.\(400 digits\) is too large"):
        parse_window(window, list(SENSORS), None, list(SENSORS), list(SENSORS))
    window[3][1] = -HUGE
    with pytest.raises(BadRequest, match="window row 3, column 1"):
        parse_window(window, list(SENSORS), None, list(SENSORS), list(SENSORS))


@pytest.mark.parametrize("stamp", [HUGE, -HUGE, 1e308, -1e300, 253_402_300_800],
                         ids=["400 nines", "-400 nines", "1e308", "-1e300", "year 10000"])
def test_an_epoch_timestamp_outside_the_calendar_is_a_bad_request(stamp):
    stamps = list(range(1_700_000_000, 1_700_000_010))
    stamps[4] = stamp
    with pytest.raises(BadRequest, match="timestamp of row 4: .* is not epoch seconds of a date in the years 1-9999"):
        parse_window(rows(), list(SENSORS), stamps, list(SENSORS), list(SENSORS))


@pytest.mark.parametrize("reading", [1e39, -1e39, 1e308, 3e38])
def test_a_reading_beyond_float32_once_standardised_is_refused_by_row_and_sensor(reading):
    values = np.array(rows())
    values[6, 1] = reading
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(BadRequest, match="window row 6, sensor 'pressure': the reading .* is out of range"):
            scorer(scale=(1.0, 0.5)).score(values)


def test_a_reading_whose_score_overflows_is_refused_by_row_and_sensor():
    values = np.array(rows())
    values[6, 0] = 1e30  # finite in float32, but its square is not
    with pytest.raises(BadRequest, match="window row 6, sensor 'flow': .* standard deviations"):
        scorer().score(values)


def test_a_graph_that_fails_on_ordinary_readings_is_the_model_s_fault():
    with pytest.raises(BundleError, match="non-finite score"):
        scorer(SquaresGraph(poison=np.nan)).score(np.array(rows()))


def test_one_huge_score_does_not_spoil_the_smoothed_scores_after_it():
    values = np.array([1e24, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert causal_mean(values, 2)[2:].tolist() == [1.5, 2.5, 3.5, 4.5]
    values = np.array(rows(12))
    values[3, 0] = 1e12  # a wild but scorable reading: a spike, then the later rows score as before
    scored = scorer(smoothing=3).score(values)
    clean = scorer(smoothing=3).score(np.array(rows(12)))
    assert np.isfinite(scored.raw[3:]).all()
    np.testing.assert_allclose(scored.raw[6:], clean.raw[6:], rtol=1e-6)


def test_statistics_of_readings_whose_spread_overflows_are_left_out():
    values = np.array([[1e308, 1.0], [-1e308, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        found = window_statistics(values, list(SENSORS))
    assert list(found) == ["pressure"] and found["pressure"]["std"] == 0.5


def test_a_huge_integer_threshold_is_a_bad_request():
    with pytest.raises(BadRequest, match=r"threshold must be a number in \[0, 1\]"):
        check_threshold(HUGE)
    assert check_threshold(1) == 1.0

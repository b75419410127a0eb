"""Residual forest: every sensor regressed from the other sensors (and the time of day and week)
by a random forest; a reading is anomalous when a sensor is further from what the others predict
than `k_sigma` standard deviations of its normal residuals, on average over the last `average_rows`
rows. The rule of plant engineers who watch "temperature too high for this load": it points
straight at the sensor that disagrees. Slow sensors are read relative to their mean over the last
`window` rows (see `pipelines.sensors.graphs.RowWindow`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from pipelines.sensors.graphs import check_row_settings, residual_graph, row_window
from pipelines.sensors.settings import SettingError
from pipelines.sensors.training import FittedGraph

#: A time feature (time of day, day of week) is used only when the fitted rows visit every one of
#: this many equal sectors of its cycle: a forest cannot say anything about a Thursday it never saw,
#: and from a Monday-to-Wednesday training period it would extrapolate Wednesday's level.
TIME_SECTORS = 24


@dataclass(frozen=True)
class Settings:
    #: Trees per sensor.
    n_estimators: int = 50
    #: Depth limit: deep enough for daily and load-dependent patterns, small enough to serve fast.
    max_depth: int = 10
    #: Rows per leaf: a leaf of one row memorises noise and makes residuals look smaller than they are.
    min_samples_leaf: int = 5
    #: Threshold in standard deviations of the out-of-bag residuals of single readings (the factory
    #: rule: 2.5), which the mean residual over `average_rows` rows is compared with.
    k_sigma: float = 2.5
    #: Read the time of day and week when the data has timestamps and the training period covers
    #: their cycle ("auto"), or never ("false").
    time_features: str = "auto"
    #: Rows a slow sensor's level is measured against (as for `pca`).
    window: int = 30
    #: A sensor whose moving average over `window` rows keeps more than this share of its variance
    #: is read relative to that average (1 turns it off); see pipelines/sensors/BENCHMARKS.md.
    slow_share: float = 0.5
    #: Rows whose signed residuals are averaged before the k σ rule: a sensor that stays k σ off what
    #: the others predict for ten rows is a fault; one reading beyond k σ among many sensors is not
    #: (with 19 sensors some reading is beyond 2.5 σ every few rows). Measured in
    #: pipelines/sensors/BENCHMARKS.md (SKAB F1 0.73 → 0.75 at half the false alarms, C-MAPSS 0.23 → 0.45).
    average_rows: int = 10

    def __post_init__(self) -> None:
        if self.k_sigma <= 0:
            raise SettingError(f"k_sigma must be positive, got {self.k_sigma}")
        if self.time_features not in ("auto", "false"):
            raise SettingError(f"time_features must be auto or false, got {self.time_features!r}")
        check_row_settings(self)


def uses_time_features(settings: Settings) -> bool:
    return settings.time_features == "auto"


def fixed_threshold(settings: Settings) -> float:
    return settings.k_sigma


def covered_time_features(rows: np.ndarray, sensors: int) -> list[int]:
    """Columns of the time features (sin, cos pairs after the sensors) whose cycle the rows cover."""
    kept = []
    for first in range(sensors, rows.shape[1] - 1, 2):
        angle = np.arctan2(rows[:, first], rows[:, first + 1])
        sectors = np.floor((angle + np.pi) / (2 * np.pi) * TIME_SECTORS).astype(int) % TIME_SECTORS
        if np.unique(sectors).size == TIME_SECTORS:
            kept += [first, first + 1]
    return kept


def fit(runs: list[np.ndarray], sensors: int, settings: Settings, seed: int, quiet: bool = True) -> FittedGraph:
    reading = row_window(runs, sensors, settings)
    rows = reading.rows(runs)
    width = rows.shape[1]
    predictors = list(range(sensors)) + covered_time_features(rows, sensors)
    regressors, inputs_of, scales = [], [], []
    for j in range(sensors):
        columns = [c for c in predictors if c != j]
        forest = RandomForestRegressor(n_estimators=settings.n_estimators, max_depth=settings.max_depth,
                                       min_samples_leaf=settings.min_samples_leaf, oob_score=True, bootstrap=True,
                                       random_state=seed + j, n_jobs=1).fit(rows[:, columns], rows[:, j])
        # out-of-bag residuals: in-sample residuals of a forest are far smaller than on new rows
        residuals = rows[:, j] - forest.oob_prediction_
        regressors.append(forest)
        inputs_of.append(columns)
        scales.append(max(float(np.std(residuals)), 1e-6))
    return FittedGraph(residual_graph(regressors, inputs_of, np.array(scales), width, reading), context=reading.context,
                       output="errors", aggregate="max")

"""Isolation Forest (Liu et al., 2008) on single rows: a reading that few random splits isolate is
anomalous. No notion of how sensors move together beyond one row; the baseline every other sensor
kind must beat. Slow sensors are read relative to their mean over the last `window` rows, and a
row's score is the mean over the last `average_rows` rows (see `pipelines.sensors.graphs.RowWindow`).
Contributions come from occlusion (see `inference.sensors.scorer`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import IsolationForest

from pipelines.sensors.graphs import check_row_settings, isolation_forest_graph, row_window
from pipelines.sensors.training import FittedGraph


@dataclass(frozen=True)
class Settings:
    #: Trees in the forest (the paper's curves flatten out after about 100).
    n_estimators: int = 200
    #: Rows drawn for each tree (the paper's ψ = 256).
    max_samples: int = 256
    #: Rows a slow sensor's level is measured against (as for `pca`).
    window: int = 30
    #: A sensor whose moving average over `window` rows keeps more than this share of its variance
    #: is read relative to that average (1 turns it off); see pipelines/sensors/BENCHMARKS.md.
    slow_share: float = 0.5
    #: Rows whose scores are averaged into one: a single noisy row is not a fault.
    average_rows: int = 10

    def __post_init__(self) -> None:
        check_row_settings(self)


def uses_time_features(settings: Settings) -> bool:
    return False


def fit(runs: list[np.ndarray], sensors: int, settings: Settings, seed: int, quiet: bool = True) -> FittedGraph:
    reading = row_window(runs, sensors, settings)
    rows = reading.rows(runs)
    forest = IsolationForest(n_estimators=settings.n_estimators, max_samples=min(settings.max_samples, len(rows)),
                             random_state=seed).fit(rows)
    return FittedGraph(isolation_forest_graph(forest, rows.shape[1], reading), context=reading.context, output="score")

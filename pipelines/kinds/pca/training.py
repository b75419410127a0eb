"""PCA T² + Q (the multivariate statistical process control of chemical plants): normal readings
span a low-dimensional subspace; Hotelling's T² measures how far a reading is inside it, Q (the
squared prediction error) how far it is off it. Each is divided by its 99th percentile on the
fitted rows so that both count alike. Slow sensors are read relative to their mean over the last
`window` rows, and a row's score is the mean over the last `average_rows` rows (see
`pipelines.sensors.graphs.RowWindow`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA

from pipelines.sensors.graphs import check_row_settings, pca_graph, row_window
from pipelines.sensors.settings import SettingError
from pipelines.sensors.training import FittedGraph

LIMIT_QUANTILE = 0.99


@dataclass(frozen=True)
class Settings:
    #: Share of the normal variance the kept components explain (the usual 90 %).
    explained_variance: float = 0.9
    #: Rows a slow sensor's level is measured against (half a minute of 1 Hz data): long enough to
    #: average its noise, short enough that a slow swing is not yet part of it.
    window: int = 30
    #: A sensor whose moving average over `window` rows keeps more than this share of its variance
    #: is read relative to that average (1 turns it off); see pipelines/sensors/BENCHMARKS.md.
    slow_share: float = 0.5
    #: Rows whose scores are averaged into one: a single noisy row is not a fault (10 rows cut
    #: SKAB's false alarms by half at the same recall; pipelines/sensors/BENCHMARKS.md).
    average_rows: int = 10

    def __post_init__(self) -> None:
        if not 0.0 < self.explained_variance < 1.0:
            raise SettingError(f"explained_variance must be in (0, 1), got {self.explained_variance}")
        check_row_settings(self)


def uses_time_features(settings: Settings) -> bool:
    return False


def fit(runs: list[np.ndarray], sensors: int, settings: Settings, seed: int, quiet: bool = True) -> FittedGraph:
    reading = row_window(runs, sensors, settings)
    rows = reading.rows(runs)
    pca = PCA(n_components=settings.explained_variance, svd_solver="full", random_state=seed).fit(rows)
    components, variances = pca.components_, np.maximum(pca.explained_variance_, 1e-12)
    centred = rows - pca.mean_
    scores = centred @ components.T
    t2 = (scores ** 2 / variances).sum(axis=1)
    q = ((centred - scores @ components) ** 2).sum(axis=1)
    t2_limit = max(float(np.quantile(t2, LIMIT_QUANTILE)), 1e-9)
    q_limit = max(float(np.quantile(q, LIMIT_QUANTILE)), 1e-9)
    graph = pca_graph(pca.mean_, components, variances, t2_limit, q_limit, rows.shape[1], reading)
    return FittedGraph(graph, context=reading.context, output="errors")

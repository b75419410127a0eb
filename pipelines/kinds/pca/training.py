"""PCA T² + Q (the multivariate statistical process control of chemical plants): normal readings
span a low-dimensional subspace; Hotelling's T² measures how far a reading is inside it, Q (the
squared prediction error) how far it is off it. Each is divided by its 99th percentile on the
fitted rows so that both count alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA

from pipelines.sensors.graphs import pca_graph
from pipelines.sensors.settings import SettingError
from pipelines.sensors.training import FittedGraph, train_sensor_kind

LIMIT_QUANTILE = 0.99


@dataclass(frozen=True)
class Settings:
    #: Share of the normal variance the kept components explain (the usual 90 %).
    explained_variance: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 < self.explained_variance < 1.0:
            raise SettingError(f"explained_variance must be in (0, 1), got {self.explained_variance}")


def uses_time_features(settings: Settings) -> bool:
    return False


def fit(runs: list[np.ndarray], sensors: int, settings: Settings, seed: int, quiet: bool = True) -> FittedGraph:
    rows = np.concatenate(runs).astype(np.float64)
    pca = PCA(n_components=settings.explained_variance, svd_solver="full", random_state=seed).fit(rows)
    components, variances = pca.components_, np.maximum(pca.explained_variance_, 1e-12)
    centred = rows - pca.mean_  # the scaler already centred the rows; PCA's mean is ~0 but applied for exactness
    scores = centred @ components.T
    t2 = (scores ** 2 / variances).sum(axis=1)
    q = ((centred - scores @ components) ** 2).sum(axis=1)
    t2_limit = max(float(np.quantile(t2, LIMIT_QUANTILE)), 1e-9)
    q_limit = max(float(np.quantile(q, LIMIT_QUANTILE)), 1e-9)
    return FittedGraph(pca_graph(components, variances, t2_limit, q_limit, rows.shape[1]), context=1, output="errors")


def train(job):
    import sys

    return train_sensor_kind(job, sys.modules[__name__])

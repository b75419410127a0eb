"""Isolation Forest (Liu et al., 2008) on single rows: a reading that few random splits isolate is
anomalous. No notion of time or of how sensors move together beyond one row; the baseline every
other sensor kind must beat. Contributions come from occlusion (see `inference.sensors.scorer`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import IsolationForest

from pipelines.sensors.graphs import isolation_forest_graph
from pipelines.sensors.training import FittedGraph, train_sensor_kind


@dataclass(frozen=True)
class Settings:
    #: Trees in the forest (the paper's curves flatten out after about 100).
    n_estimators: int = 200
    #: Rows drawn for each tree (the paper's ψ = 256).
    max_samples: int = 256


def uses_time_features(settings: Settings) -> bool:
    return False


def fit(runs: list[np.ndarray], sensors: int, settings: Settings, seed: int, quiet: bool = True) -> FittedGraph:
    rows = np.concatenate(runs)
    forest = IsolationForest(n_estimators=settings.n_estimators, max_samples=min(settings.max_samples, len(rows)),
                             random_state=seed).fit(rows)
    return FittedGraph(isolation_forest_graph(forest, rows.shape[1]), context=1, output="score")


def train(job):
    import sys

    return train_sensor_kind(job, sys.modules[__name__])

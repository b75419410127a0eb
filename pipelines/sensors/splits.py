"""Time-ordered splits of an asset's recordings: fit, calibration (held out), evaluation.

The split is a rule, not a draw: it follows from the data and the training settings, and the
bundle records it. Per recording: the training period is its first `train_rows` rows (or `train_fraction` of it);
its last `calibration_fraction` is held out from fitting and sets the threshold; everything after
the training period is evaluated, and only that counts in reported metrics. Rows labelled
anomalous inside the training period are never fitted; in the calibration share they make the
threshold F1-optimal instead of a quantile of normal scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.errors import DatasetError
from pipelines.sensors.datasets import AssetData, Segment
from pipelines.sensors.settings import SeriesSettings


@dataclass(frozen=True)
class SegmentSplit:
    segment: str
    rows: int
    fit_end: int  # rows [0, fit_end) may be fitted
    train_end: int  # rows [fit_end, train_end) calibrate; rows [train_end, rows) are evaluated

    def to_dict(self) -> dict:
        return {"segment": self.segment, "rows": self.rows, "fit_end": self.fit_end, "train_end": self.train_end}


def split_segment(segment: Segment, settings: SeriesSettings) -> SegmentSplit:
    rows = segment.rows
    train_end = min(settings.train_rows, rows) if settings.train_rows else int(round(rows * settings.train_fraction))
    held = max(1, int(round(train_end * settings.calibration_fraction))) if train_end > 1 else 0
    return SegmentSplit(segment.name, rows, train_end - held, train_end)


def split_asset(data: AssetData, settings: SeriesSettings) -> list[SegmentSplit]:
    return [split_segment(segment, settings) for segment in data.segments]


def check_unchanged(data: AssetData, recorded: dict) -> None:
    """The recordings are those the preprocess step checked (the training snapshot did not move)."""
    then = {entry["segment"]: entry["rows"] for entry in recorded.get("segments", [])}
    now = {segment.name: segment.rows for segment in data.segments}
    if then != now:
        changed = sorted(name for name in set(then) | set(now) if then.get(name) != now.get(name))
        raise DatasetError(f"asset {data.name!r}: recording(s) {changed} changed since the data was checked "
                           "(rows then and now differ); run the pipeline again")


def normal_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True in `mask`."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def fit_mask(segment: Segment, split: SegmentSplit) -> np.ndarray:
    """Rows that may be fitted: the fit share, minus rows labelled anomalous."""
    mask = np.zeros(segment.rows, bool)
    mask[:split.fit_end] = True
    if segment.labels is not None:
        mask &= segment.labels == 0
    return mask

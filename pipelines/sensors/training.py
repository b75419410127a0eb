"""Train a sensor bundle, whatever the kind: read, split, scale, fit the kind's graph, calibrate, write.

A sensor kind's training module provides:
- `Settings`: a frozen dataclass of its own settings, each default documented;
- `uses_time_features(settings) -> bool`: whether its graph reads the time of day and week;
- `fit(runs, sensors, settings, seed, quiet) -> FittedGraph`: its ONNX graph, fitted on `runs`
  (contiguous stretches of normal rows, standardised, time features appended when used), whose
  input and output follow `inference.sensors.scorer`;
- optionally `fixed_threshold(settings) -> float | None`: a threshold in raw-score units that
  replaces calibration (the residual forest's k σ).
Everything else — the scaler, the split, calibration through the serving scorer, the bundle — is
done here once for every kind.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from inference.bundle import write_bundle
from inference.calibration import Calibration, calibrate
from inference.errors import DatasetError
from inference.runtime import open_session
from inference.sensors.bundle import TrainedAsset, contents
from inference.sensors.scorer import AssetSpec, SeriesScorer
from pipelines.kinds import TrainingJob, TrainingReport
from pipelines.progress import on_terminal, progress
from pipelines.sensors.datasets import AssetData, filled, read_asset
from pipelines.sensors.settings import SeriesSettings, SettingError, as_dict, names, parse
from pipelines.sensors.splits import SegmentSplit, check_unchanged, fit_mask, normal_runs, split_asset

log = logging.getLogger(__name__)

#: Smallest scale a sensor is divided by, relative to its level: a sensor that barely moved while the
#: model learnt must not turn the next millivolt into thousands of standard deviations.
MIN_RELATIVE_SCALE = 1e-3


@dataclass
class FittedGraph:
    graph: bytes  # serialised ONNX model
    context: int
    output: str  # "errors" or "score"
    aggregate: str = "sum"


def train_sensor_kind(job: TrainingJob, kind: ModuleType) -> TrainingReport:
    unknown = sorted(set(job.hyperparameters) - names(SeriesSettings, kind.Settings))
    if unknown:
        raise SettingError(f"{job.kind} has no setting(s) {unknown}; it knows {sorted(names(SeriesSettings, kind.Settings))}")
    series, own = parse(SeriesSettings, job.hyperparameters), parse(kind.Settings, job.hyperparameters)
    if not job.classes:
        raise DatasetError("no assets to train")
    datasets = {name: read_asset(job.data_root, name) for name in job.classes}  # every asset checked before any work
    trained, timings = [], {}
    epoch_bars_hidden = job.quiet or not on_terminal()  # bars only on a terminal: a log gets no line per epoch
    for name in progress(job.classes, f"train {job.kind}", unit="asset", quiet=job.quiet):
        started = time.perf_counter()
        recorded = (job.split_manifest or {}).get(name)
        if recorded:
            check_unchanged(datasets[name], recorded)
        splits = split_asset(datasets[name], series)
        trained.append(train_asset(datasets[name], splits, kind, series, own, epoch_bars_hidden))
        timings[name] = {"total_s": time.perf_counter() - started}
        log.info("trained %s/%s in %.1fs", job.kind, name, timings[name]["total_s"])
    lineage = {"data_uri": str(job.data_root), "classes": list(job.classes), **job.lineage}
    manifest = write_bundle(job.output, *contents(job.kind, as_dict(series, own), trained, lineage))
    return TrainingReport(manifest, timings, {name: d.problems for name, d in datasets.items() if d.problems})


def train_asset(data: AssetData, splits: list[SegmentSplit], kind: ModuleType, series: SeriesSettings, own,
                quiet: bool = True) -> TrainedAsset:
    values = [filled(data.sensor_values(segment)) for segment in data.segments]
    masks = [fit_mask(segment, split) for segment, split in zip(data.segments, splits)]
    fit_rows = int(sum(mask.sum() for mask in masks))
    if fit_rows < series.min_fit_rows:
        raise DatasetError(f"asset {data.name!r}: {fit_rows} normal row(s) to fit on; at least {series.min_fit_rows} "
                           "are needed (more data, or a larger train_fraction / train_rows)")
    mean, scale = fit_scaler(np.concatenate([v[m] for v, m in zip(values, masks)]))
    uses_time = bool(kind.uses_time_features(own)) and data.timestamp_column is not None
    draft = AssetSpec(tuple(data.columns), tuple(data.sensors), tuple(mean), tuple(scale), 1, "score", "sum", uses_time)
    inputs = [draft.inputs(v, segment.times) for v, segment in zip(values, data.segments)]
    runs = [x[start:end] for x, mask in zip(inputs, masks) for start, end in normal_runs(mask)]
    fitted = kind.fit(runs, len(data.sensors), own, series.seed, quiet)
    spec = AssetSpec(draft.columns, draft.sensors, draft.mean, draft.scale, fitted.context, fitted.output, fitted.aggregate,
                     uses_time, series.smoothing, series.merge_gap)
    scorer = SeriesScorer(spec, open_session(fitted.graph, what=f"graph of asset {data.name!r}"), None)
    normal, anomalous = held_out_scores(scorer, data, values, splits)
    calibration = asset_calibration(kind, own, series, normal, anomalous, data.name)
    return TrainedAsset(
        data.name, spec, fitted.graph, calibration,
        data={"timestamp_column": data.timestamp_column, "label_columns": data.label_columns,
              "ignored_sensors": data.excluded, "sampling_seconds": sampling_seconds(data), "problems": data.problems},
        score_stats={"normal_mean": float(np.mean(normal)), "normal_std": float(np.std(normal)),
                     "normal_max": float(np.max(normal)), "fit_rows": fit_rows,
                     "anomalous_mean": float(np.mean(anomalous)) if len(anomalous) else None},
        split={"segments": [s.to_dict() for s in splits]},
    )


def fit_scaler(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = rows.mean(axis=0), rows.std(axis=0)
    return mean, np.maximum(std, MIN_RELATIVE_SCALE * (np.abs(mean) + 1.0))


def held_out_scores(scorer: SeriesScorer, data: AssetData, values: list[np.ndarray], splits: list[SegmentSplit]):
    """Raw scores of the calibration rows (never fitted), split by their labels."""
    normal, anomalous = [], []
    for segment, v, split in zip(data.segments, values, splits):
        if split.train_end < scorer.spec.min_rows or split.train_end <= split.fit_end:
            continue
        times = segment.times[:split.train_end] if segment.times is not None else None
        raw = scorer.score(v[:split.train_end], times).raw[split.fit_end:]
        labels = segment.labels[split.fit_end:split.train_end] if segment.labels is not None else np.zeros(raw.size)
        scored = np.isfinite(raw)
        normal.append(raw[scored & (labels == 0)])
        anomalous.append(raw[scored & (labels == 1)])
    normal = np.concatenate(normal) if normal else np.zeros(0)
    if normal.size == 0:
        raise DatasetError(f"asset {data.name!r}: no held-out normal row is left to calibrate the threshold; "
                           "give it a longer training period")
    return normal, np.concatenate(anomalous) if anomalous else np.zeros(0)


def asset_calibration(kind: ModuleType, own, series: SeriesSettings, normal: np.ndarray, anomalous: np.ndarray,
                      name: str) -> Calibration:
    fixed = getattr(kind, "fixed_threshold", lambda settings: None)(own)
    if fixed is not None:
        # a rule in the score's own units (k σ): normalised so that k maps to 0.5 and 0 to 0
        return Calibration(float(fixed), 0.0, 2.0 * float(fixed), "k_sigma", int(normal.size), int(anomalous.size))
    calibration = calibrate(normal, anomalous, series.normal_quantile)
    if calibration.method == "normal_quantile" and series.threshold_margin != 1.0:
        threshold = calibration.threshold * series.threshold_margin
        low = min(calibration.low, threshold)
        calibration = Calibration(threshold, low, max(calibration.high, 2 * threshold - low), calibration.method,
                                  calibration.normal_count, calibration.anomalous_count)
    return calibration


def sampling_seconds(data: AssetData) -> float | None:
    steps = [np.diff(segment.times) for segment in data.segments if segment.times is not None and segment.rows > 1]
    return float(np.median(np.concatenate(steps))) if steps else None

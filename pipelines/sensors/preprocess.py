"""Validate sensor data and report its quality per asset; record each recording's size.

The report names every problem the reader found (see `pipelines.sensors.datasets`). An asset
fails when no sensor is usable or when its training period holds too little normal data. The
manifest records the recordings and their rows: training refuses data that changed since.
"""

from __future__ import annotations

import numpy as np

from inference.errors import DatasetError
from pipelines.sensors.datasets import read_asset
from pipelines.sensors.settings import SeriesSettings
from pipelines.sensors.splits import fit_mask, split_asset



def asset_quality(data, splits) -> dict:
    labels = [s.labels for s in data.segments if s.labels is not None]
    anomalous = int(sum(int(l.sum()) for l in labels))
    return {
        "segments": len(data.segments),
        "rows": int(sum(s.rows for s in data.segments)),
        "columns": data.columns,
        "sensors": data.sensors,
        "excluded_sensors": data.excluded,
        "timestamp_column": data.timestamp_column,
        "labelled": data.labelled,
        "anomalous_rows": anomalous,
        "fit_rows": int(sum(fit_mask(seg, split).sum() for seg, split in zip(data.segments, splits))),
        "evaluation_rows": int(sum(split.rows - split.train_end for split in splits)),
        "evaluation_anomalous_rows": int(sum(int(seg.labels[split.train_end:].sum()) for seg, split in
                                             zip(data.segments, splits) if seg.labels is not None)),
        "problems": data.problems,
    }


def preprocess(root, classes: list[str], seed: int, **settings) -> tuple[dict, dict, list[str]]:
    """(manifest, data-quality report, failures); `settings` are the split settings to judge the data by."""
    series = SeriesSettings(**{k: v for k, v in settings.items()})
    manifest, quality, failures = {"seed": seed, "classes": {}}, {"classes": {}}, []
    for name in classes:
        try:
            data = read_asset(root, name)
        except DatasetError as exc:
            failures.append(exc.message)
            continue
        splits = split_asset(data, series)
        report = asset_quality(data, splits)
        quality["classes"][name] = report
        manifest["classes"][name] = {"segments": [{"segment": s.name, "rows": s.rows} for s in data.segments]}
        if report["fit_rows"] < series.min_fit_rows:
            failures.append(f"asset {name!r} has {report['fit_rows']} normal rows to fit on in its training period; "
                            f"at least {series.min_fit_rows} are needed")
        if not np.isfinite(report["rows"]) or report["evaluation_rows"] == 0:
            failures.append(f"asset {name!r} leaves no rows after its training period to evaluate on")
    return manifest, quality, failures

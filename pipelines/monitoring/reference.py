"""What the model saw at training, for monitoring to compare production with.

Built by the Evaluate step next to `evaluation.json` (`monitoring_reference.json`), so it travels
with the model version: locally the registry's metadata names it, on AWS it sits beside the
evaluation the model package's metrics point at. Per class or asset:

- `scores`: raw scores of the held-out *normal* evaluation data, scored through the serving code
  path (images: one per image; sensors: one per row whose scored context holds no anomalous row,
  turned into window peaks when compared);
- `inputs`: images: the statistics of `inference.input_statistics` for every training and held-out
  normal image; sensors: each sensor's mean, spread and quantiles over the rows the model was fitted on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REFERENCE_FILE = "monitoring_reference.json"
#: The model version's metadata key naming its reference (local registry).
MONITORING_REFERENCE_KEY = "monitoring_reference"
#: Enough for stable quantiles, small enough to keep the file a few hundred kilobytes.
MAX_SCORES = 20_000
MAX_IMAGES = 500


def build_reference(bundle_path, data_root, classes=None) -> dict:
    from inference.model import load_model

    model = load_model(bundle_path)
    build = _image_reference if model.modality == "image" else _sensor_reference
    names = classes or model.classes
    return {"model": {"kind": model.kind, "version": model.version}, "modality": model.modality,
            "classes": {name: build(model, data_root, name) for name in names}}


def write_reference(reference: dict, output_dir) -> Path:
    path = Path(output_dir) / REFERENCE_FILE
    path.write_text(json.dumps(reference, separators=(",", ":")))
    return path


def _rounded(values) -> list[float]:
    return [round(float(v), 6) for v in values]


def _image_reference(model, data_root, name: str) -> dict:
    from inference.input_statistics import image_statistics
    from inference.vision.imageio import load_image_file
    from pipelines.vision.datasets import read_class
    from pipelines.vision.evaluation import evaluation_samples, score_class

    data = read_class(data_root, name)
    normal = [s for s in evaluation_samples(model, data, name, "heldout") if not s.is_anomaly]
    scored = score_class(model, data, name, normal, quiet=True, keep_images=False)
    white_level = model.white_level(name)
    statistics: dict[str, list[float]] = {}
    for sample in (list(data.train) + normal)[:MAX_IMAGES]:
        try:
            found = image_statistics(load_image_file(sample.path, white_level=white_level))
        except Exception:  # an unreadable file is the data-quality report's business, not this one's
            continue
        for key, value in found.items():
            statistics.setdefault(key, []).append(value)
    return {"scores": _rounded(scored.raw_scores[:MAX_SCORES]), "inputs": {"images": statistics},
            "threshold": float(model.model_for(name).calibration.threshold)}


def _clear_of_anomalies(labels: np.ndarray, span: int) -> np.ndarray:
    """Rows none of whose `span` scored rows (the row and those before it its score depends on) is
    labelled anomalous. A normal row just after an event still carries the event in its context and
    scores high; kept, such rows fatten the reference's tail, and the peaks of windows of normal
    traffic then look like a drift downwards."""
    anomalous = np.concatenate([[0], np.cumsum(np.asarray(labels) != 0)])
    rows = np.arange(len(labels))
    return (anomalous[rows + 1] - anomalous[np.maximum(rows + 1 - span, 0)]) == 0


def _sensor_reference(model, data_root, name: str) -> dict:
    from pipelines.sensors.datasets import filled, read_asset

    scorer = model.scorer_for(name)
    data = read_asset(data_root, name)
    bounds = {entry["segment"]: entry for entry in model.manifest["classes"][name].get("split", {}).get("segments", [])}
    columns = [data.sensors.index(s) for s in scorer.spec.sensors]
    scores, fitted = [], []
    for segment in data.segments:
        bound = bounds.get(segment.name)
        if bound is None:
            continue
        values = filled(data.sensor_values(segment))[:, columns]
        raw = scorer.score(values, segment.times).raw
        held_out = np.arange(bound["train_end"], segment.rows)
        if segment.labels is not None:
            held_out = held_out[_clear_of_anomalies(segment.labels, scorer.spec.min_rows)[held_out]]
        scores.append(raw[held_out][np.isfinite(raw[held_out])])
        fitted.append(values[: bound["fit_end"]])
    rows = np.concatenate(fitted) if fitted else np.empty((0, len(columns)))
    sensors = {}
    for index, sensor in enumerate(scorer.spec.sensors):
        readings = rows[:, index][np.isfinite(rows[:, index])]
        if readings.size:
            sensors[sensor] = {"mean": float(readings.mean()), "std": float(readings.std()),
                               "quantiles": _rounded(np.quantile(readings, np.linspace(0, 1, 21)))}
    joined = np.concatenate(scores) if scores else np.empty(0)
    return {"scores": _rounded(joined[:MAX_SCORES]), "inputs": {"sensors": sensors},
            "threshold": float(scorer.calibration.threshold)}

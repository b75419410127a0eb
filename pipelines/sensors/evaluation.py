"""Evaluate a sensor bundle on the rows after each asset's training period, through the serving scorer.

Per asset: row AUROC on raw scores (threshold-free), F1, precision, recall, accuracy, the false-alarm
rate (FAR: normal rows flagged) and the missed-alarm rate (MAR: anomalous rows not flagged) at the
calibrated threshold, and events as an engineer sees them: how many labelled anomalies an event
caught, how many events caught nothing, and how many rows after an anomaly's start it was noticed.
Outputs in `output_dir`: `evaluation.json` and, per asset, `series_<asset>.png` (score over time,
threshold, labelled anomalies), `roc_<asset>.png`, `histogram_<asset>.png`.

`split="heldout"` (the default) reports on the evaluation period only; `split="all"` adds the
calibration rows held out of the training period (never fitted, but the threshold was set on them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from inference.errors import DatasetError
from inference.model import load_model
from inference.sensors.events import Span, find_spans
from inference.sensors.sensor_model import SensorModel
from pipelines import metrics
from pipelines.plots import histogram_plot, pyplot, roc_plot
from pipelines.progress import progress
from pipelines.sensors.datasets import filled, read_asset
from pipelines.sensors.splits import SegmentSplit

METRIC_KEYS = ("auroc", "f1", "precision", "recall", "far", "mar", "event_recall", "event_precision")
SPLITS = {
    "heldout": "the rows after each recording's training period: neither fitted nor used to choose the threshold",
    "all": "every row the model was not fitted on: the evaluation period and the calibration rows that chose the threshold",
}


def evaluate_bundle(bundle_path, data_root, output_dir, classes=None, split: str = "heldout", quiet: bool = False,
                    plots: bool = True, model: SensorModel | None = None) -> dict:
    if split not in SPLITS:
        raise ValueError(f"unknown evaluation split {split!r}; choose one of {list(SPLITS)}")
    model = model or load_model(bundle_path)
    classes = classes or model.classes
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    per_class = {}
    for name in progress(classes, f"evaluate {model.kind}", unit="asset", quiet=quiet):
        result = evaluate_asset(model, data_root, name, split)
        if plots:
            write_plots(result, output_dir, name)
        per_class[name] = result["metrics"]
    mean = {key: _mean([m[key] for m in per_class.values()]) for key in METRIC_KEYS}
    report = {
        "model": {"kind": model.kind, "version": model.version, "modality": model.modality},
        "split": {"name": split, "description": SPLITS[split]},
        "classes": per_class,
        "mean": mean,
        "binary_classification_metrics": {key: {"value": mean[key], "standard_deviation": float(np.std(
            [m[key] for m in per_class.values() if m[key] is not None]))} for key in METRIC_KEYS if mean[key] is not None},
    }
    (output_dir / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    return report


def evaluate_asset(model: SensorModel, data_root, name: str, split: str = "heldout") -> dict:
    scorer = model.scorer_for(name)
    data = read_asset(data_root, name)
    recorded = model.manifest["classes"][name].get("split", {}).get("segments")
    if not recorded:
        raise DatasetError(f"asset {name!r}: the bundle records no split, so the rows it was trained on are unknown")
    bounds = {entry["segment"]: SegmentSplit(**entry) for entry in recorded}
    scores, labels, series, started = [], [], [], time.perf_counter()
    for segment in data.segments:
        bound = bounds.get(segment.name)
        if bound is None or bound.rows != segment.rows:
            raise DatasetError(f"asset {name!r}: recording {segment.name} is not the one the model was trained with")
        if segment.labels is None:
            raise DatasetError(f"asset {name!r}: {segment.name} has no labels, so nothing can be measured; add an "
                               "'anomaly' column or a labels.csv of anomalous time ranges")
        values = filled(data.sensor_values(segment))[:, [data.sensors.index(s) for s in scorer.spec.sensors]]
        raw = scorer.score(values, segment.times).raw
        first = bound.train_end if split == "heldout" else bound.fit_end
        kept = np.arange(first, segment.rows)
        kept = kept[np.isfinite(raw[kept])]
        scores.append(raw[kept])
        labels.append(segment.labels[kept])
        series.append({"segment": segment.name, "rows": kept, "raw": raw, "labels": segment.labels, "first": first})
    elapsed = time.perf_counter() - started
    scores, labels = np.concatenate(scores), np.concatenate(labels).astype(int)
    threshold = scorer.calibration.threshold
    flagged = scores >= threshold
    result = {
        "auroc": metrics.image_auroc(labels, scores) if labels.size else None,
        **metrics.threshold_metrics(labels, flagged),
        "far": float(flagged[labels == 0].mean()) if (labels == 0).any() else None,
        "mar": float((~flagged[labels == 1]).mean()) if (labels == 1).any() else None,
        **event_metrics(series, scorer.calibration.normalise, scorer.spec.merge_gap),
        "rows": int(labels.size),
        "anomalous_rows": int(labels.sum()),
        "threshold": threshold,
        "calibration": scorer.calibration.method,
        "seconds_per_row": elapsed / max(sum(s["raw"].size for s in series), 1),
        "problems": data.problems,
    }
    return {"metrics": result, "labels": labels, "scores": scores, "series": series, "threshold": threshold,
            "normalise": scorer.calibration.normalise}


def event_metrics(series: list[dict], normalise, merge_gap: int) -> dict:
    """Labelled anomalies caught by an event, events that caught none, and the rows until noticed."""
    caught, labelled, false_events, events, delays = 0, 0, 0, 0, []
    for part in series:
        first = part["first"]
        scores = normalise(part["raw"][first:])
        found = find_spans(scores, 0.5, merge_gap)
        truth = find_spans(part["labels"][first:].astype(float), 0.5)
        events += len(found)
        labelled += len(truth)
        for anomaly in truth:
            hits = [span for span in found if _overlap(span, anomaly)]
            if hits:
                caught += 1
                delays.append(max(0, min(span.start for span in hits) - anomaly.start))
        false_events += sum(not any(_overlap(span, anomaly) for anomaly in truth) for span in found)
    return {
        "labelled_events": labelled,
        "detected_events": events,
        "event_recall": caught / labelled if labelled else None,
        "event_precision": (events - false_events) / events if events else None,
        "false_events": false_events,
        "mean_delay_rows": float(np.mean(delays)) if delays else None,
    }


def _overlap(a: Span, b: Span) -> bool:
    return a.start <= b.end and b.start <= a.end


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def write_plots(result: dict, output_dir: Path, name: str) -> None:
    labels, scores = result["labels"], result["scores"]
    _series_plot(pyplot(), result, output_dir / f"series_{name}.png", name)
    roc_plot(labels, scores, result["metrics"]["auroc"], f"{name}: row ROC", output_dir / f"roc_{name}.png")
    histogram_plot(labels, scores, result["threshold"], "rows", f"{name}: score histogram", output_dir / f"histogram_{name}.png")


def _series_plot(plt, result: dict, path: Path, name: str) -> None:
    parts = result["series"]
    fig, axes = plt.subplots(len(parts), 1, figsize=(9, 2.4 * len(parts)), squeeze=False)
    for ax, part in zip(axes[:, 0], parts):
        normalised = result["normalise"](part["raw"])
        rows = np.arange(normalised.size)
        ax.plot(rows, normalised, linewidth=0.7, label="anomaly score")
        ax.fill_between(rows, 0, 1, where=part["labels"] == 1, color="tab:red", alpha=0.15, label="labelled anomaly")
        ax.axvspan(0, part["first"], color="grey", alpha=0.12, label="training period")
        ax.axhline(0.5, color="black", linestyle="--", linewidth=0.8, label="threshold")
        ax.set(ylim=(0, 1.02), xlim=(0, rows.size), ylabel="score", title=f"{name}: {part['segment']}")
    axes[0, 0].legend(loc="upper left", fontsize=7, ncol=4)
    axes[-1, 0].set_xlabel("row")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

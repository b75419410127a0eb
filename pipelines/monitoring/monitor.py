"""One monitoring pass over a period of verdicts: per class (or asset), model kind and version, the
anomaly rate over time, score drift against training, input drift, and precision and recall where
people confirmed or corrected verdicts; alarms where the thresholds say so. Plain data in, one JSON
summary out."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import numpy as np

from inference.input_statistics import IMAGE_STATISTICS
from pipelines.monitoring import drift
from pipelines.monitoring.thresholds import ThresholdConfig, Thresholds

#: Bucket widths for the over-time series, in minutes; the narrowest giving at most MAX_BUCKETS.
BUCKET_MINUTES = (5, 15, 60, 360, 1440, 10080)
MAX_BUCKETS = 48


def bucket_minutes(since: datetime, until: datetime) -> int:
    span = max((until - since).total_seconds() / 60, 1)
    return next((m for m in BUCKET_MINUTES if span / m <= MAX_BUCKETS), BUCKET_MINUTES[-1])


def monitor(records: list[dict], references, since: datetime, until: datetime,
            thresholds: ThresholdConfig | None = None) -> dict:
    """`references(kind, version)` gives the version's training reference (or None)."""
    thresholds = thresholds or ThresholdConfig()
    groups = defaultdict(list)
    for record in records:
        groups[(record["class_name"], record["model_kind"], record["model_version"])].append(record)
    minutes = bucket_minutes(since, until)
    summaries = []
    for (name, kind, version), found in sorted(groups.items(), key=_group_order):
        reference = references(kind, version)
        summaries.append(monitor_group(name, kind, version, found, reference, thresholds.for_class(name), since, minutes))
    alarms = [{**alarm, "class_name": g["class_name"], "model_kind": g["model_kind"], "model_version": g["model_version"]}
              for g in summaries for alarm in g["alarms"]]
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "period": {"since": since.isoformat(timespec="seconds"), "until": until.isoformat(timespec="seconds"),
                   "bucket_minutes": minutes},
        "verdicts": len(records),
        # the inspection log (API traffic) or data capture (calls made to an endpoint directly)
        "sources": dict(Counter(record.get("source", "inspection_log") for record in records)),
        "thresholds": {"default": thresholds.default.to_dict(), "classes": thresholds.classes or {}},
        "groups": summaries,
        "alarms": alarms,
        "status": "alarm" if alarms else "ok",
    }


def _group_order(item) -> tuple:
    """Class, kind, version, with what an answer did not name (a captured verdict without a version) last."""
    return tuple((part is None, str(part)) for part in item[0])


def monitor_group(name: str, kind: str, version: str, records: list[dict], reference: dict | None,
                  limits: Thresholds, since: datetime, minutes: int) -> dict:
    class_reference = (reference or {}).get("classes", {}).get(name)
    modality = (reference or {}).get("modality") or ("sensors" if any("rows" in r["detail"] for r in records) else "image")
    anomalies = sum(r["is_anomaly"] for r in records)
    summary = {
        "class_name": name, "model_kind": kind, "model_version": version, "modality": modality,
        "verdicts": len(records), "anomalies": anomalies, "anomaly_rate": anomalies / len(records) if records else None,
        "anomaly_rate_over_time": over_time(records, since, minutes),
        "score_drift": None, "input_drift": None, "quality": quality(records, since, minutes),
        "thresholds": limits.to_dict(),
        "reference": "found" if class_reference else "none: this version has no monitoring reference for the class",
    }
    if class_reference:
        summary["score_drift"] = score_drift(records, class_reference, modality, limits)
        summary["input_drift"] = (image_input_drift if modality == "image" else sensor_input_drift)(records, class_reference, limits)
    summary["alarms"] = alarms_of(summary, limits)
    return summary


def _enough(limits: Thresholds, count: int) -> bool:
    return count >= limits.min_samples


def score_drift(records: list[dict], reference: dict, modality: str, limits: Thresholds) -> dict:
    current = np.array([r["raw_score"] for r in records if r["raw_score"] is not None], dtype=np.float64)
    expected = np.asarray(reference.get("scores", []), dtype=np.float64)
    if modality == "sensors":  # a window's score is its peak row: compare with peaks of as many reference rows
        rows = [r["detail"].get("scored_rows") or r["detail"].get("rows") for r in records]
        rows = [int(v) for v in rows if v]
        expected = drift.window_peaks(expected, int(np.median(rows)) if rows else 1)
    # a small reference (often a sensor's few held-out windows) is judged by the exact KS test alone:
    # PSI on a handful of reference values is mostly noise (see `thresholds`)
    small = drift.finite_count(expected) < limits.min_samples
    result = drift.compare(expected, current, exact=small)
    result["method"] = "ks_exact" if small else "psi_ks"
    result["judged"] = _enough(limits, result["samples"]) and result["reference_samples"] >= (
        limits.min_reference_scores if small else limits.min_samples)
    significant = result["ks_p_value"] is not None and result["ks_p_value"] < limits.p_value
    large = small or (result["psi"] is not None and result["psi"] >= limits.score_psi)
    result["drifted"] = bool(result["judged"] and significant and large)
    return result


def image_input_drift(records: list[dict], reference: dict, limits: Thresholds) -> dict:
    expected = reference.get("inputs", {}).get("images", {})
    current = defaultdict(list)
    for record in records:
        for key, value in (record["detail"].get("input_statistics") or {}).items():
            current[key].append(value)
    tested = [key for key in IMAGE_STATISTICS if key in expected and current.get(key)]
    level = limits.p_value / max(len(tested), 1)  # Bonferroni over the statistics tested
    statistics = {}
    for key in tested:
        result = drift.compare(expected[key], current[key])
        result["drifted"] = bool(_enough(limits, result["samples"]) and result["psi"] is not None
                                 and result["psi"] >= limits.input_psi and result["ks_p_value"] < level)
        statistics[key] = result
    drifted = [key for key, result in statistics.items() if result["drifted"]]
    worst = max(statistics, key=lambda k: statistics[k]["psi"] or 0.0) if statistics else None
    return {"kind": "images", "statistics": statistics, "drifted": drifted, "worst": worst,
            "samples": max((len(v) for v in current.values()), default=0)}


def sensor_input_drift(records: list[dict], reference: dict, limits: Thresholds) -> dict:
    expected = reference.get("inputs", {}).get("sensors", {})
    means, stds = defaultdict(list), defaultdict(list)
    for record in records:
        for sensor, values in ((record["detail"].get("input_statistics") or {}).get("sensors") or {}).items():
            means[sensor].append(values["mean"])
            if values.get("std") is not None:
                stds[sensor].append(values["std"])
    sensors = {}
    for sensor, stats in expected.items():
        result = drift.sensor_shift(stats["mean"], stats["std"], means.get(sensor, []))
        result.update(drift.sensor_spread(stats["std"], means.get(sensor, []), stds.get(sensor, [])))
        enough = _enough(limits, result["windows"])
        result["shifted"] = bool(enough and result["shift_sigma"] is not None and result["shift_sigma"] >= limits.sensor_shift_sigma)
        # only a wider spread: a period shorter than training's may cover fewer operating points, and so spread less
        result["spread_out"] = bool(enough and result["spread_ratio"] is not None
                                    and result["spread_ratio"] >= limits.sensor_spread_ratio)
        result["drifted"] = result["shifted"] or result["spread_out"]
        sensors[sensor] = result
    drifted = [name for name, result in sensors.items() if result["drifted"]]
    worst = max(sensors, key=lambda k: sensors[k]["shift_sigma"] or 0.0) if sensors else None
    return {"kind": "sensors", "sensors": sensors, "drifted": drifted, "worst": worst,
            "samples": max((len(v) for v in means.values()), default=0)}


def alarms_of(summary: dict, limits: Thresholds) -> list[dict]:
    name, alarms = summary["class_name"], []
    score = summary["score_drift"]
    if score and score["drifted"]:
        test = (f"exact KS p {score['ks_p_value']:.1e} against {score['reference_samples']} reference scores"
                if score.get("method") == "ks_exact" else f"PSI {score['psi']:.2f}, KS p {score['ks_p_value']:.1e}")
        alarms.append({"type": "score_drift", "message": f"drift on class {name}: anomaly scores moved ({test}, "
                       f"median {score['reference_median']:.4g} → {score['current_median']:.4g})"})
    inputs = summary["input_drift"]
    if inputs and inputs["drifted"]:
        if inputs["kind"] == "images":
            moved = ", ".join(f"{k} PSI {inputs['statistics'][k]['psi']:.2f} (median {inputs['statistics'][k]['reference_median']:.4g} → "
                              f"{inputs['statistics'][k]['current_median']:.4g})" for k in inputs["drifted"])
        else:
            moved = ", ".join(_sensor_move(k, inputs["sensors"][k]) for k in inputs["drifted"])
        alarms.append({"type": "input_drift", "message": f"drift on class {name}: inputs changed: {moved}",
                       "drifted": inputs["drifted"]})
    rate = summary["anomaly_rate"]
    if rate is not None and _enough(limits, summary["verdicts"]) and rate > limits.anomaly_rate:
        alarms.append({"type": "anomaly_rate", "message": f"class {name}: {rate:.0%} of {summary['verdicts']} verdicts "
                       f"anomalous (limit {limits.anomaly_rate:.0%})"})
    return alarms


def _sensor_move(name: str, result: dict) -> str:
    moves = []
    if result.get("shifted", result["drifted"]):
        moves.append(f"{result['shift_sigma']:.1f} σ off training (mean {result['reference_mean']:.4g} → {result['current_mean']:.4g})")
    if result.get("spread_out"):
        moves.append(f"spread {result['spread_ratio']:.1f}× training's (std {result['reference_std']:.4g} → {result['current_std']:.4g})")
    return f"{name} " + " and ".join(moves)


def _bucket_start(timestamp: str, since: datetime, minutes: int) -> datetime:
    moment = datetime.fromisoformat(timestamp)
    index = int((moment - since).total_seconds() // (minutes * 60))
    return since + timedelta(minutes=minutes * index)


def over_time(records: list[dict], since: datetime, minutes: int) -> list[dict]:
    buckets = defaultdict(lambda: [0, 0])
    for record in records:
        bucket = buckets[_bucket_start(record["timestamp"], since, minutes)]
        bucket[0] += 1
        bucket[1] += int(record["is_anomaly"])
    return [{"start": start.isoformat(timespec="seconds"), "verdicts": n, "anomalies": k, "rate": k / n}
            for start, (n, k) in sorted(buckets.items())]


def _precision_recall(reviewed: list[dict]) -> dict:
    tp = sum(r["is_anomaly"] and r["verified_label"] == "anomaly" for r in reviewed)
    fp = sum(r["is_anomaly"] and r["verified_label"] == "normal" for r in reviewed)
    fn = sum((not r["is_anomaly"]) and r["verified_label"] == "anomaly" for r in reviewed)
    return {"reviewed": len(reviewed), "true_positives": tp, "false_positives": fp, "false_negatives": fn,
            "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None}


def quality(records: list[dict], since: datetime, minutes: int) -> dict:
    """Precision and recall of the verdicts people confirmed or corrected, overall and over time."""
    reviewed = [r for r in records if r.get("verified_label") in ("anomaly", "normal")]
    buckets = defaultdict(list)
    for record in reviewed:
        buckets[_bucket_start(record["timestamp"], since, minutes)].append(record)
    return {**_precision_recall(reviewed),
            "over_time": [{"start": start.isoformat(timespec="seconds"), **_precision_recall(found)}
                          for start, found in sorted(buckets.items())]}

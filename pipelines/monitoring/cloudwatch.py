"""CloudWatch metrics of a monitoring summary, per class or asset (dimension `ClassName`), in the
`IVADAS/Monitoring` namespace; the alarms "drift on class X" watch `DriftDetected`."""

from __future__ import annotations

NAMESPACE = "IVADAS/Monitoring"
DRIFT_METRIC = "DriftDetected"


#: Values where a lower one is worse (precision and recall of reviewed verdicts); for every other
#: value but the count a higher one is worse (drift, anomaly rate).
LOWER_IS_WORSE = ("ReviewedPrecision", "ReviewedRecall")


def metric_data(summary: dict) -> list[dict]:
    """One value per class and metric over the model versions serving it in the period (a blue/green
    switch or a canary serves one class with two): the verdicts added up, every other value the worse
    version's, so that a new version that flags good parts is not hidden behind the old one's precision."""
    per_class: dict[str, dict[str, float]] = {}
    for group in summary["groups"]:
        values = per_class.setdefault(group["class_name"], {})

        def worst(name, value):
            if value is None:
                return
            pick = min if name in LOWER_IS_WORSE else max
            values[name] = pick(values[name], float(value)) if name in values else float(value)

        values["Verdicts"] = values.get("Verdicts", 0.0) + float(group["verdicts"])
        worst("AnomalyRate", group["anomaly_rate"])
        worst(DRIFT_METRIC, 1.0 if any(a["type"] in ("score_drift", "input_drift") for a in group["alarms"]) else 0.0)
        if group["score_drift"]:
            worst("ScoreDriftPSI", group["score_drift"]["psi"])
        inputs = group["input_drift"]
        if inputs and inputs["worst"]:
            if inputs["kind"] == "images":
                worst("InputDriftPSI", inputs["statistics"][inputs["worst"]]["psi"])
            else:
                worst("SensorShiftSigma", inputs["sensors"][inputs["worst"]]["shift_sigma"])
                spreads = [s["spread_ratio"] for s in inputs["sensors"].values() if s.get("spread_ratio") is not None]
                worst("SensorSpreadRatio", max(spreads) if spreads else None)
        worst("ReviewedPrecision", group["quality"]["precision"])
        worst("ReviewedRecall", group["quality"]["recall"])
    return [{"MetricName": name, "Dimensions": [{"Name": "ClassName", "Value": class_name}], "Value": value,
             "Unit": "Count" if name == "Verdicts" else "None"}
            for class_name, values in sorted(per_class.items()) for name, value in sorted(values.items())]


def publish(summary: dict, client=None, region: str | None = None) -> int:
    import boto3

    client = client or boto3.client("cloudwatch", region_name=region)
    data = metric_data(summary)
    for start in range(0, len(data), 150):  # PutMetricData takes up to 1,000 values; stay well below
        client.put_metric_data(Namespace=NAMESPACE, MetricData=data[start:start + 150])
    return len(data)

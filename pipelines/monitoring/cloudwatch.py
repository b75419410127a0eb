"""CloudWatch metrics of a monitoring summary, per class or asset (dimension `ClassName`), in the
`IVADAS/Monitoring` namespace; the alarms "drift on class X" watch `DriftDetected`."""

from __future__ import annotations

NAMESPACE = "IVADAS/Monitoring"
DRIFT_METRIC = "DriftDetected"


def metric_data(summary: dict) -> list[dict]:
    """One value per class and metric: the worst over the model versions serving it in the period."""
    per_class: dict[str, dict[str, float]] = {}
    for group in summary["groups"]:
        values = per_class.setdefault(group["class_name"], {})

        def worst(name, value):
            if value is not None:
                values[name] = max(values.get(name, float("-inf")), float(value))

        worst("Verdicts", group["verdicts"])
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

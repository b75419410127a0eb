"""The per-class CloudWatch values when more than one model version served a class in the period
(a blue/green switch, a canary): counts add up, and each quality or drift value is the worse one."""

import pytest

from pipelines.monitoring.cloudwatch import DRIFT_METRIC, metric_data


def group(version: str, verdicts: int, precision, recall, rate: float, drifted: bool) -> dict:
    return {"class_name": "tiles", "model_kind": "patchcore", "model_version": version, "verdicts": verdicts,
            "anomaly_rate": rate, "score_drift": None, "input_drift": None,
            "alarms": [{"type": "input_drift"}] if drifted else [],
            "quality": {"precision": precision, "recall": recall}}


@pytest.fixture
def published():
    summary = {"groups": [group("ivadas-training-patchcore/1", 40, 0.9, 0.8, 0.05, False),
                          group("ivadas-training-patchcore/2", 30, 0.4, 0.95, 0.3, True)]}
    return {m["MetricName"]: m["Value"] for m in metric_data(summary)}


def test_verdicts_of_all_versions_serving_a_class_add_up(published):
    assert published["Verdicts"] == 70


def test_the_worse_versions_precision_and_recall_are_published(published):
    # the newly switched version flags many good parts: the class's precision must show it, not hide it
    assert published["ReviewedPrecision"] == pytest.approx(0.4)
    assert published["ReviewedRecall"] == pytest.approx(0.8)


def test_drift_and_anomaly_rate_take_the_worse_version(published):
    assert published[DRIFT_METRIC] == 1.0 and published["AnomalyRate"] == pytest.approx(0.3)


def test_a_sensor_assets_widest_spread_is_published():
    sensors = {"pressure": {"shift_sigma": 3.0, "spread_ratio": 1.1}, "vibration": {"shift_sigma": 0.1, "spread_ratio": 2.4}}
    summary = {"groups": [{**group("ivadas-training-pca/1", 40, None, None, 0.0, True), "class_name": "pump-1",
                           "input_drift": {"kind": "sensors", "worst": "pressure", "sensors": sensors}}]}
    published = {m["MetricName"]: m["Value"] for m in metric_data(summary)}
    assert published["SensorShiftSigma"] == 3.0 and published["SensorSpreadRatio"] == 2.4

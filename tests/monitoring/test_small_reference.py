"""Score drift against a training reference of fewer than `min_samples` scores (a sensor asset's few
held-out windows, a class with a small held-out split): judged by the exact KS test alone, so a period
whose scores moved alarms and a normal one does not."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from pipelines.monitoring import drift
from pipelines.monitoring.monitor import monitor
from pipelines.monitoring.thresholds import ThresholdConfig, Thresholds

SINCE = datetime(2026, 11, 30, 8, tzinfo=timezone.utc)
UNTIL = SINCE + timedelta(hours=1)
WINDOW_ROWS = 64


def _records(class_name: str, kind: str, scores, rows: int | None = None) -> list[dict]:
    detail = {"rows": rows, "scored_rows": rows} if rows else {}
    return [{"request_id": f"{class_name}-{index}", "timestamp": (SINCE + timedelta(seconds=60 * index)).isoformat(),
             "class_name": class_name, "model_kind": kind, "model_version": f"ivadas-training-{kind}/1",
             "anomaly_score": 0.1, "raw_score": float(score), "threshold": 0.5, "is_anomaly": False,
             "detail": detail, "verified_label": None}
            for index, score in enumerate(scores)]


def _image_reference(scores) -> dict:
    return {"modality": "image", "classes": {"tiles": {"scores": list(map(float, scores)), "inputs": {}}}}


def _sensor_reference(row_scores) -> dict:
    return {"modality": "sensors", "classes": {"pump-1": {"scores": list(map(float, row_scores)), "inputs": {}}}}


def _score_drift(records, reference, thresholds=None) -> dict:
    summary = monitor(records, lambda kind, version: reference, SINCE, UNTIL, thresholds)
    [group] = summary["groups"]
    return group["score_drift"], [a for a in summary["alarms"] if a["type"] == "score_drift"]


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(20261130)


def test_twelve_reference_scores_and_a_shifted_period_alarm(rng):
    reference = rng.normal(1.0, 0.1, 12)
    result, alarms = _score_drift(_records("tiles", "patchcore", rng.normal(1.35, 0.1, 40)), _image_reference(reference))
    assert result["reference_samples"] == 12 and result["method"] == "ks_exact" and result["judged"]
    assert result["drifted"] and result["ks_p_value"] < 0.01
    [alarm] = alarms
    assert "drift on class tiles" in alarm["message"] and "exact KS" in alarm["message"] and "12 reference scores" in alarm["message"]


def test_twelve_reference_scores_and_normal_traffic_do_not_alarm(rng):
    reference = rng.normal(1.0, 0.1, 12)
    result, alarms = _score_drift(_records("tiles", "patchcore", rng.normal(1.0, 0.1, 40)), _image_reference(reference))
    assert result["judged"] and result["method"] == "ks_exact"
    assert not result["drifted"] and result["ks_p_value"] > 0.01 and alarms == []


def test_a_sensor_assets_few_held_out_windows_catch_an_offset_and_not_a_normal_period(rng):
    """600 held-out rows make 9 window peaks of 64 rows: fewer than min_samples."""
    reference = _sensor_reference(rng.normal(0.0, 1.0, 600))
    normal = [rng.normal(0.0, 1.0, WINDOW_ROWS).max() for _ in range(40)]
    shifted = [rng.normal(1.5, 1.0, WINDOW_ROWS).max() for _ in range(40)]
    result, alarms = _score_drift(_records("pump-1", "pca", normal, WINDOW_ROWS), reference)
    assert result["reference_samples"] == 9 and result["judged"] and not result["drifted"] and alarms == []
    result, alarms = _score_drift(_records("pump-1", "pca", shifted, WINDOW_ROWS), reference)
    assert result["reference_samples"] == 9 and result["drifted"] and len(alarms) == 1


def test_a_large_reference_still_needs_psi_and_ks_together(rng):
    reference = rng.normal(1.0, 0.1, 200)
    result, alarms = _score_drift(_records("tiles", "patchcore", rng.normal(1.35, 0.1, 40)), _image_reference(reference))
    assert result["method"] == "psi_ks" and result["drifted"] and result["psi"] >= 0.25
    lenient = ThresholdConfig(Thresholds(score_psi=100.0))  # the effect-size limit still counts
    result, alarms = _score_drift(_records("tiles", "patchcore", rng.normal(1.35, 0.1, 40)), _image_reference(reference), lenient)
    assert result["ks_p_value"] < 0.01 and not result["drifted"] and alarms == []


def test_too_few_reference_scores_or_verdicts_are_reported_not_judged(rng):
    result, alarms = _score_drift(_records("tiles", "patchcore", rng.normal(3.0, 0.1, 40)), _image_reference(rng.normal(1.0, 0.1, 4)))
    assert result["reference_samples"] == 4 and not result["judged"] and not result["drifted"] and alarms == []
    result, alarms = _score_drift(_records("tiles", "patchcore", rng.normal(3.0, 0.1, 20)), _image_reference(rng.normal(1.0, 0.1, 12)))
    assert result["samples"] == 20 and not result["judged"] and alarms == []
    fewer = ThresholdConfig(Thresholds(min_reference_scores=3))  # configurable per class like the rest
    result, alarms = _score_drift(_records("tiles", "patchcore", rng.normal(3.0, 0.1, 40)), _image_reference(rng.normal(1.0, 0.1, 4)), fewer)
    assert result["judged"] and result["drifted"]


def test_the_exact_test_keeps_false_alarms_at_the_level_for_small_references():
    """The rule's premise, on normal draws: about 1 % false alarms at p < 0.01 for 5 to 20 reference scores."""
    rng = np.random.default_rng(7)
    for size in (5, 12, 20):
        alarms = sum(drift.ks(rng.normal(0, 1, size), rng.normal(0, 1, 40), exact=True)["p_value"] < 0.01 for _ in range(400))
        assert alarms <= 12  # 1 % of 400 is 4; 12 is far beyond what chance gives a valid test


def test_a_sensor_reference_leaves_out_rows_whose_scored_context_holds_an_anomaly():
    from pipelines.monitoring.reference import _clear_of_anomalies

    labels = np.array([0, 0, 0, 1, 1, 0, 0, 0, 0, 0])
    # rows 5 and 6 are labelled normal but are scored over rows 3-4 (a span of 3 rows)
    assert _clear_of_anomalies(labels, 3).tolist() == [True, True, True, False, False, False, False, True, True, True]
    assert _clear_of_anomalies(labels, 1).tolist() == (labels == 0).tolist()

"""Files scored by the sensor feed carry the same input statistics into the inspection log as windows
sent to the API, so that drift monitoring sees both."""

import sys
from pathlib import Path

import numpy as np

from inference.input_statistics import window_statistics

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))
import inspection_log  # noqa: E402
import sensor_feed  # noqa: E402


def test_a_scored_file_is_logged_with_each_sensors_statistics(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTION_LOG", "sqlite")
    monkeypatch.setenv("INSPECTION_DB", str(tmp_path / "log.sqlite"))
    rng = np.random.default_rng(0)
    values = rng.normal(5, 2, (50, 3))
    values[7, 1] = np.nan
    result = {"asset": "pump-1", "source": "sensors/pump-1/incoming/a.csv", "model": {"kind": "pca", "version": "g/1"},
              "anomaly_score": 0.3, "raw_score": 1.2, "threshold": 0.5, "is_anomaly": False, "sensors": ["a", "b", "c"],
              "timestamps": [str(i) for i in range(50)], "values": values.tolist(), "scores": [0.3] * 50, "events": [],
              "contributions": []}
    sensor_feed.record_inspection(result)
    [record] = inspection_log.SqliteInspectionLog(tmp_path / "log.sqlite").recent()
    logged = record["detail"]["input_statistics"]["sensors"]
    assert logged == window_statistics(values, ["a", "b", "c"])
    assert logged["b"]["mean"] == round(float(np.nanmean(values[:, 1])), 6)

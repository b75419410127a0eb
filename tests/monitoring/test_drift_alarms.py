"""The monitor over real verdicts: a period of normal traffic raises no alarm; the same line with darker
images, or a pump with one sensor offset, raises "drift on class X" for that class only."""

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from infra.cli import main
from pipelines.monitoring.reference import MONITORING_REFERENCE_KEY, build_reference, write_reference
from pipelines.registry import LocalRegistry

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))
import inspection_log  # noqa: E402

DAY = datetime(2026, 11, 30, tzinfo=timezone.utc)
NORMAL, SHIFTED = (DAY + timedelta(hours=8), DAY + timedelta(hours=9)), (DAY + timedelta(hours=9), DAY + timedelta(hours=10))
NOISY = (DAY + timedelta(hours=10), DAY + timedelta(hours=11))
IMAGE_VERSION, SENSOR_VERSION = "ivadas-training-patchcore/1", "ivadas-training-pca/1"


def register(store: Path, group: str, reference: dict) -> None:
    folder = store / "references" / group
    folder.mkdir(parents=True)
    path = write_reference(reference, folder)
    LocalRegistry(store).register(group, "unused", {}, {MONITORING_REFERENCE_KEY: str(path)})


def record(log, result: dict, version: str, moment: datetime, index: int) -> None:
    result = {**result, "model": {"kind": result["model"]["kind"], "version": version}}
    entry = inspection_log.inspection_record(result, f"{version.replace('/', '-')}-{moment:%H}-{index}")
    log.record({**entry, "timestamp": (moment + timedelta(seconds=30 * index)).isoformat(timespec="milliseconds")})


@pytest.fixture(scope="module")
def production(tmp_path_factory, demo_data, patchcore_bundle, detector, sensor_data, sensor_bundle):
    """A store whose registry knows both versions' references and whose inspection log holds two
    hours of traffic: normal in the first, darker tiles and an offset pump sensor in the second."""
    from inference.model import load_model
    from inference.sensors.window import SensorWindow
    from pipelines.sensors.synthetic import SENSORS, generate_series
    from pipelines.vision.synthetic import generate

    store = tmp_path_factory.mktemp("monitored")
    register(store, "ivadas-training-patchcore", build_reference(patchcore_bundle[0], demo_data, ["tiles"]))
    sensor_reference = build_reference(sensor_bundle[0], sensor_data, ["pump-1"])
    register(store, "ivadas-training-pca", sensor_reference)
    log = inspection_log.SqliteInspectionLog(store / "inspections" / "inspections.sqlite")

    fresh = generate(tmp_path_factory.mktemp("line") / "demo", ["tiles"], size=160, train_count=40,
                     test_good_count=0, test_defect_count=0, seed=7)
    for index, path in enumerate(sorted((fresh / "tiles" / "train" / "good").glob("*.png"))):
        image = Image.open(path).convert("RGB")
        record(log, detector.predict_image(image, "tiles", outputs=[]), IMAGE_VERSION, NORMAL[0], index)
        darker = ImageEnhance.Brightness(image).enhance(0.6)  # the line's lighting lost 40 %
        record(log, detector.predict_image(darker, "tiles", outputs=[]), IMAGE_VERSION, SHIFTED[0], index)

    model = load_model(sensor_bundle[0])
    sensors = list(model.scorer_for("pump-1").spec.sensors)
    times, values, labels = generate_series(rows=2400, seed=11)  # the same pump on other days
    values = values[:, [SENSORS.index(s) for s in sensors]]
    offset = sensors.index("pressure")
    offset_by = 3 * sensor_reference["classes"]["pump-1"]["inputs"]["sensors"]["pressure"]["std"]
    starts = [s for s in range(0, 2400 - 64, 48) if not labels[s:s + 64].any()][:40]
    loose = next(index for index, name in enumerate(sensors) if name != "pressure")
    loose_std = sensor_reference["classes"]["pump-1"]["inputs"]["sensors"][sensors[loose]]["std"]
    noise = np.random.default_rng(13)
    assert len(starts) >= 30
    for index, start in enumerate(starts):
        window = values[start:start + 64].copy()
        result = model.predict_window(SensorWindow(window, times[start:start + 64], None), "pump-1", outputs=[])
        record(log, result, SENSOR_VERSION, NORMAL[0], index)
        noisy = window.copy()
        window[:, offset] += offset_by  # a pressure transmitter recalibrated wrongly
        result = model.predict_window(SensorWindow(window, times[start:start + 64], None), "pump-1", outputs=[])
        record(log, result, SENSOR_VERSION, SHIFTED[0], index)
        noisy[:, loose] += noise.normal(0, 2.5 * loose_std, 64)  # a loose transmitter: same level, much noisier
        result = model.predict_window(SensorWindow(noisy, times[start:start + 64], None), "pump-1", outputs=[])
        record(log, result, SENSOR_VERSION, NOISY[0], index)
    return store


def monitor(store, period, output, capsys):
    since, until = (moment.isoformat() for moment in period)
    assert main(["monitor", "--store", str(store), "--since", since, "--until", until, "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    return json.loads((output / "summary.json").read_text()), printed


def test_normal_traffic_raises_no_alarm(production, tmp_path, capsys):
    summary, printed = monitor(production, NORMAL, tmp_path, capsys)
    assert summary["verdicts"] == 80
    # the quick PCA model flags some windows of other days: an anomaly-rate matter, never a drift alarm
    assert [a for a in summary["alarms"] if a["type"] != "anomaly_rate"] == []
    assert "drift on class" not in printed
    by_class = {g["class_name"]: g for g in summary["groups"]}
    tiles, pump = by_class["tiles"], by_class["pump-1"]
    assert tiles["reference"] == "found" and pump["reference"] == "found"
    assert tiles["input_drift"]["samples"] == 40 and not tiles["input_drift"]["drifted"]
    assert tiles["input_drift"]["statistics"]["brightness"]["psi"] < 0.25
    assert pump["input_drift"]["sensors"]["pressure"]["shift_sigma"] < 1.0 and not pump["input_drift"]["drifted"]
    assert max(s["spread_ratio"] for s in pump["input_drift"]["sensors"].values()) < 1.5  # well below the alarm's 2
    assert tiles["score_drift"]["samples"] == 40 and not tiles["score_drift"]["drifted"]
    assert (tmp_path / "report.html").is_file()


def test_darker_images_and_an_offset_sensor_raise_drift_alarms_for_their_classes(production, tmp_path, capsys):
    summary, printed = monitor(production, SHIFTED, tmp_path, capsys)
    assert summary["status"] == "alarm"
    drift = {(a["class_name"], a["type"]): a for a in summary["alarms"] if a["type"] in ("input_drift", "score_drift")}
    assert ("tiles", "input_drift") in drift and ("pump-1", "input_drift") in drift
    assert "brightness" in drift[("tiles", "input_drift")]["drifted"]
    assert drift[("pump-1", "input_drift")]["drifted"] == ["pressure"]  # only the sensor that moved
    assert "drift on class tiles" in printed and "drift on class pump-1" in printed
    by_class = {g["class_name"]: g for g in summary["groups"]}
    brightness = by_class["tiles"]["input_drift"]["statistics"]["brightness"]
    assert brightness["current_median"] < 0.7 * brightness["reference_median"]
    assert 2.5 < by_class["pump-1"]["input_drift"]["sensors"]["pressure"]["shift_sigma"] < 3.5
    html = (tmp_path / "report.html").read_text()
    assert "drift on class tiles" in html and "ALARM" in html
    assert any(p.name.startswith("inputs_tiles") for p in tmp_path.glob("*.png"))


def test_confirmed_and_corrected_verdicts_give_precision_and_recall(production, tmp_path, capsys):
    from pipelines.monitoring.monitor import quality

    records = [{"timestamp": NORMAL[0].isoformat(), "is_anomaly": flagged, "verified_label": label}
               for flagged, label in [(True, "anomaly"), (True, "anomaly"), (True, "normal"), (False, "anomaly"),
                                      (False, "normal"), (False, None)]]
    found = quality(records, NORMAL[0], 60)
    assert found["reviewed"] == 5 and found["precision"] == pytest.approx(2 / 3) and found["recall"] == pytest.approx(2 / 3)


def test_bad_thresholds_and_periods_are_one_clear_error(production, tmp_path, capsys):
    bad = tmp_path / "thresholds.json"
    bad.write_text(json.dumps({"classes": {"tiles": {"input_psi": "high"}}}))
    assert main(["monitor", "--store", str(production), "--thresholds", str(bad)]) == 2
    assert "input_psi must be a non-negative number" in capsys.readouterr().err
    assert main(["monitor", "--store", str(production), "--since", "yesterday"]) == 2
    assert "is not a time" in capsys.readouterr().err
    assert main(["monitor", "--store", str(tmp_path), "--since", "1h"]) == 2
    assert "no inspection log" in capsys.readouterr().err


def test_thresholds_are_per_class(production, tmp_path, capsys):
    lenient = tmp_path / "thresholds.json"
    # tiles' reference holds a handful of held-out scores, judged by the exact KS test alone: its level
    # is the knob there (thresholds.py)
    lenient.write_text(json.dumps({"classes": {"tiles": {"input_psi": 100.0, "score_psi": 100.0, "p_value": 0.0}}}))
    since, until = (moment.isoformat() for moment in SHIFTED)
    assert main(["monitor", "--store", str(production), "--since", since, "--until", until, "--output", str(tmp_path / "r"),
                 "--thresholds", str(lenient)]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert {a["class_name"] for a in summary["alarms"] if a["type"].endswith("drift")} == {"pump-1"}


def test_feedback_markers_of_the_local_store_give_reviewed_precision_and_recall(production, tmp_path, capsys):
    """POST /feedback leaves datasets/feedback/inspection/<request id>.json with the truth it recorded."""
    markers = production / "datasets" / "feedback" / "inspection"
    markers.mkdir(parents=True, exist_ok=True)
    (markers / "an-inspection-of-another-period.json").write_text(json.dumps({"truth": "good"}))
    from pipelines.monitoring.records import attach_feedback, folder_feedback, read_sqlite

    records = read_sqlite(production / "inspections" / "inspections.sqlite", *NORMAL)
    tiles = [r for r in records if r["class_name"] == "tiles"][:3]
    for record, truth in zip(tiles, ("good", "good", "anomalous")):
        (markers / f"{record['request_id']}.json").write_text(json.dumps({"truth": truth, "correct": True}))
    found = folder_feedback(production)
    assert {r["request_id"] for r in tiles} <= set(found)
    labelled = attach_feedback(records, found)
    assert sum(r["verified_label"] is not None for r in labelled) == 3
    summary, _ = monitor(production, NORMAL, tmp_path, capsys)
    quality = next(g for g in summary["groups"] if g["class_name"] == "tiles")["quality"]
    assert quality["reviewed"] == 3
    assert quality["false_negatives"] + quality["true_positives"] == 1


def test_a_noisy_sensor_raises_drift_for_that_sensor_alone(production, tmp_path, capsys):
    summary, printed = monitor(production, NOISY, tmp_path, capsys)
    [alarm] = [a for a in summary["alarms"] if a["type"] == "input_drift"]
    pump = next(g for g in summary["groups"] if g["class_name"] == "pump-1")
    [loose] = alarm["drifted"]
    assert loose != "pressure" and pump["input_drift"]["sensors"][loose]["spread_out"]
    assert not pump["input_drift"]["sensors"][loose]["shifted"]  # its level stayed: the mean alone missed it
    assert f"{loose} spread" in printed and "drift on class pump-1" in printed

"""The drift statistics on plain arrays: PSI stays small for samples of one distribution (even small
ones) and grows with a shift; KS agrees; a sensor's shift is in training standard deviations; a sensor
verdict's reference is the peak of each window-long run of rows; thresholds refuse what they do not know."""

import numpy as np
import pytest

from pipelines.monitoring import drift
from pipelines.monitoring.thresholds import ThresholdConfig, ThresholdError, Thresholds


@pytest.mark.parametrize("n", [30, 100, 1000])
def test_psi_of_one_distribution_stays_below_the_alarm_and_a_shift_exceeds_it(n):
    rng = np.random.default_rng(n)
    reference = rng.normal(0, 1, 300)
    same = [drift.psi(reference, rng.normal(0, 1, n)) for _ in range(50)]
    assert np.percentile(same, 95) < Thresholds().input_psi
    assert drift.psi(reference, rng.normal(1.0, 1, n)) > Thresholds().input_psi  # one standard deviation darker
    assert drift.psi(reference, reference) < 0.01


def test_psi_is_finite_when_every_value_falls_outside_the_reference():
    assert np.isfinite(drift.psi(np.arange(100.0), np.full(50, 1e6)))
    assert drift.psi([], [1.0]) is None and drift.psi([1.0, np.nan], [np.nan]) is None


def test_compare_reports_ks_and_medians():
    rng = np.random.default_rng(0)
    result = drift.compare(rng.normal(0, 1, 200), rng.normal(2, 1, 50))
    assert result["ks_p_value"] < 1e-6 and result["ks_statistic"] > 0.5
    assert result["current_median"] == pytest.approx(2, abs=0.4) and result["samples"] == 50 and result["reference_samples"] == 200


def test_sensor_shift_is_in_training_standard_deviations():
    assert drift.sensor_shift(10.0, 2.0, [16.0, 16.0])["shift_sigma"] == pytest.approx(3.0)
    assert drift.sensor_shift(10.0, 0.0, [10.0])["shift_sigma"] == 0.0  # a constant sensor that stayed constant
    assert drift.sensor_shift(10.0, 2.0, [])["windows"] == 0


def test_window_peaks_are_the_maximum_of_each_run_of_rows():
    assert drift.window_peaks([1, 5, 2, 3, 9, 4, 7], 3).tolist() == [5, 9]
    assert drift.window_peaks([1, 2], 5).tolist() == [2]


def test_thresholds_per_class_and_their_errors():
    config = ThresholdConfig.from_dict({"default": {"input_psi": 0.3}, "classes": {"tiles": {"min_samples": 10}}})
    assert config.for_class("tiles") == Thresholds(input_psi=0.3, min_samples=10)
    assert config.for_class("wood") == Thresholds(input_psi=0.3)
    for bad, message in (({"classes": {"tiles": {"psi": 1}}}, "unknown threshold"), ({"default": {"p_value": -1}}, "non-negative"),
                         ({"default": {"p_value": True}}, "non-negative"), ({"extra": {}}, "unknown key"), ([], "JSON object")):
        with pytest.raises(ThresholdError, match=message):
            ThresholdConfig.from_dict(bad)


def test_a_thresholds_file_asked_for_must_exist_whatever_its_name(tmp_path):
    # `--thresholds ./monitoring.json` with a typo in the folder must not quietly fall back to the defaults
    with pytest.raises(ThresholdError, match="no thresholds file"):
        ThresholdConfig.load(tmp_path / "monitoring.json")
    assert ThresholdConfig.load(tmp_path / "monitoring.json", optional=True) == ThresholdConfig()
    (tmp_path / "monitoring.json").write_text('{"classes": {"tiles": {"input_psi": 0.4}}}')
    assert ThresholdConfig.load(tmp_path / "monitoring.json").for_class("tiles").input_psi == 0.4


def test_the_store_thresholds_apply_unless_a_file_is_named(tmp_path, monkeypatch):
    from pipelines.monitoring import job

    seen = []
    monkeypatch.setattr(job.verdicts, "read_sqlite", lambda *a: [])
    monkeypatch.setattr(job, "run", lambda records, references, since, until, output, thresholds: seen.append(thresholds))
    monkeypatch.setattr("pipelines.registry.LocalRegistry", lambda store: None)
    since, until = drift_period()
    job.run_local(tmp_path, tmp_path / "out", since, until)  # no monitoring.json in the store: the defaults
    (tmp_path / "monitoring.json").write_text('{"default": {"min_samples": 50}}')
    job.run_local(tmp_path, tmp_path / "out", since, until)
    assert [t.default.min_samples for t in seen] == [30, 50]
    with pytest.raises(ThresholdError, match="no thresholds file"):
        job.run_local(tmp_path, tmp_path / "out", since, until, tmp_path / "elsewhere" / "monitoring.json")


def drift_period():
    from datetime import datetime, timedelta, timezone

    until = datetime(2026, 12, 1, tzinfo=timezone.utc)
    return until - timedelta(hours=1), until


@pytest.mark.parametrize("values, message", [
    ({"p_value": 5}, "p_value must be at most 1"),  # every KS test would count as significant
    ({"anomaly_rate": 20}, "anomaly_rate must be at most 1"),  # a share, not a percentage
    ({"min_samples": 2.5}, "min_samples must be a whole number"),
    ({"min_reference_scores": 4.2}, "min_reference_scores must be a whole number"),
])
def test_thresholds_out_of_their_range_are_refused(values, message):
    with pytest.raises(ThresholdError, match=message):
        ThresholdConfig.from_dict({"classes": {"tiles": values}})
    assert ThresholdConfig.from_dict({"default": {"p_value": 1, "anomaly_rate": 0.0, "min_samples": 50.0}})


def test_the_over_time_plot_shows_reviewed_precision_and_recall():
    from datetime import datetime, timezone

    from pipelines.monitoring.monitor import over_time, quality
    from pipelines.monitoring.report import rate_series

    since = datetime(2026, 12, 1, 8, tzinfo=timezone.utc)
    records = [{"timestamp": f"2026-12-01T08:{minute:02d}:00+00:00", "is_anomaly": flagged, "verified_label": label}
               for minute, flagged, label in [(1, True, "anomaly"), (2, True, "normal"), (3, False, "anomaly"),
                                              (20, False, None), (21, True, None)]]
    group = {"anomaly_rate_over_time": over_time(records, since, 15), "quality": quality(records, since, 15)}
    lines = {label: (times, values) for label, _, times, values in rate_series(group)}
    assert lines["anomaly rate"] == (["12-01T08:00", "12-01T08:15"], [2 / 3, 0.5])
    assert lines["precision (reviewed)"] == (["12-01T08:00"], [0.5])
    assert lines["recall (reviewed)"] == (["12-01T08:00"], [0.5])  # a missed defect was reported


@pytest.mark.parametrize("current", [320.0, 100.0])
def test_a_reference_of_one_value_sees_a_move_either_way(current):
    # every training image 160 px wide (the usual case): larger images are as much a drift as smaller ones
    assert drift.psi(np.full(100, 160.0), np.full(40, current)) > Thresholds().input_psi
    assert drift.psi(np.full(100, 160.0), np.full(40, 160.0)) < 0.05  # the empty bins' pseudo-counts only
    # a reference whose top quantiles are one value (a clipped statistic) sees values beyond it too
    clipped = np.concatenate([np.linspace(0, 1, 50), np.full(50, 1.0)])
    assert drift.psi(clipped, np.full(40, 2.0)) > Thresholds().input_psi


def test_images_of_another_size_are_input_drift():
    from pipelines.monitoring.monitor import image_input_drift

    rng = np.random.default_rng(3)
    reference = {"inputs": {"images": {"width": [160.0] * 60, "height": [120.0] * 60,
                                       "brightness": list(rng.normal(160, 3, 60))}}}
    records = [{"detail": {"input_statistics": {"width": 320.0, "height": 240.0, "brightness": float(b)}}}
               for b in rng.normal(160, 3, 40)]
    found = image_input_drift(records, reference, Thresholds())
    assert sorted(found["drifted"]) == ["height", "width"]


def test_sensor_spread_is_the_periods_total_spread_in_training_standard_deviations():
    # windows of spread 3 around means 1 apart: total variance 9 + 0.25 (the windows' means vary by ±0.5)
    found = drift.sensor_spread(2.0, [9.5, 10.5], [3.0, 3.0])
    assert found["current_std"] == pytest.approx(np.sqrt(9.25)) and found["spread_ratio"] == pytest.approx(np.sqrt(9.25) / 2)
    assert drift.sensor_spread(2.0, [], [])["spread_ratio"] is None


def test_a_sensor_gone_noisy_is_input_drift_though_its_mean_stayed():
    from pipelines.monitoring.monitor import alarms_of, sensor_input_drift

    rng = np.random.default_rng(5)
    reference = {"inputs": {"sensors": {"pressure": {"mean": 5.0, "std": 1.0}, "flow": {"mean": 50.0, "std": 4.0}}}}

    def windows(pressure_noise: float) -> list[dict]:
        found = []
        for _ in range(40):
            pressure = rng.normal(5.0, 0.8, 64) + rng.normal(0, pressure_noise, 64)
            flow = rng.normal(50.0, 3.5, 64)
            found.append({"detail": {"input_statistics": {"sensors": {
                "pressure": {"mean": float(pressure.mean()), "std": float(pressure.std())},
                "flow": {"mean": float(flow.mean()), "std": float(flow.std())}}}}})
        return found

    assert sensor_input_drift(windows(0.0), reference, Thresholds())["drifted"] == []
    noisy = sensor_input_drift(windows(2.5), reference, Thresholds())
    assert noisy["drifted"] == ["pressure"]
    pressure = noisy["sensors"]["pressure"]
    assert pressure["spread_out"] and not pressure["shifted"] and pressure["spread_ratio"] > 2
    summary = {"class_name": "pump-1", "score_drift": None, "input_drift": noisy, "anomaly_rate": None, "verdicts": 40}
    [alarm] = alarms_of(summary, Thresholds())
    assert "drift on class pump-1" in alarm["message"] and "pressure spread" in alarm["message"]
    # the knob is per class like the others
    assert sensor_input_drift(windows(2.5), reference, Thresholds(sensor_spread_ratio=5.0))["drifted"] == []


def test_a_verdict_without_a_model_version_is_its_own_group_not_a_crash(tmp_path):
    from datetime import datetime, timezone

    from pipelines.monitoring.monitor import monitor
    from pipelines.monitoring.report import write_report

    since, until = drift_period()
    records = [{"request_id": str(i), "timestamp": (since.replace(minute=i)).isoformat(), "class_name": "tiles",
                "model_kind": "patchcore", "model_version": version, "raw_score": 1.0, "anomaly_score": 0.1,
                "threshold": 0.5, "is_anomaly": False, "detail": {}, "verified_label": None}
               for i, version in enumerate(["ivadas-training-patchcore/1", None, "ivadas-training-patchcore/1"])]
    summary = monitor(records, lambda kind, version: None, since, until)
    assert [(g["model_version"], g["verdicts"]) for g in summary["groups"]] == [("ivadas-training-patchcore/1", 2), (None, 1)]
    assert datetime.fromisoformat(summary["generated_at"]).tzinfo == timezone.utc
    assert "patchcore None" in write_report(summary, records, lambda kind, version: None, tmp_path).read_text()


def test_the_sensor_plot_shows_level_and_spread_against_their_alarms():
    from pipelines.monitoring.report import sensor_bars

    inputs = {"sensors": {"pressure": {"shift_sigma": 3.0, "spread_ratio": 1.1, "shifted": True, "spread_out": False},
                          "flow": {"shift_sigma": 0.2, "spread_ratio": 2.6, "shifted": False, "spread_out": True}}}
    level, spread = sensor_bars(inputs, Thresholds().to_dict())
    assert level == ("level shift / 1", [3.0, 0.2], [True, False])
    assert spread[0] == "spread / 2" and spread[1] == pytest.approx([0.55, 1.3]) and spread[2] == [False, True]

"""Sensor files as a plant exports them, with everything that goes wrong in them: each problem is
reported (and the data still used where it can be), or the asset fails with the reason."""

import numpy as np
import pytest

from inference.errors import DatasetError
from pipelines.sensors.datasets import list_assets, read_asset
from pipelines.sensors.preprocess import preprocess


def write(path, header, rows, sep=","):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([sep.join(header)] + [sep.join(map(str, r)) for r in rows]) + "\n")
    return path


def minutes(count, start=0):
    return [f"2026-01-01T{(m // 60) % 24:02d}:{m % 60:02d}:00Z" if m < 1440 else f"2026-01-02T{((m - 1440) // 60):02d}:{m % 60:02d}:00Z"
            for m in range(start, start + count)]


def healthy_rows(count, seed=0):
    rng = np.random.default_rng(seed)
    load = np.sin(np.arange(count) / 30)
    return [[t, round(10 + 3 * l + rng.normal(0, 0.1), 4), round(50 + 9 * l + rng.normal(0, 0.3), 4)]
            for t, l in zip(minutes(count), load)]


def reasons(data):
    return " | ".join(p["reason"] for p in data.problems)


def test_every_layout_and_separator_is_read(tmp_path):
    write(tmp_path / "press.csv", ["timestamp", "temp", "flow"], healthy_rows(100))
    write(tmp_path / "mill.csv", ["datetime", "temp", "flow", "anomaly", "changepoint"],
          [r + [0, 0] for r in healthy_rows(100)], sep=";")
    write(tmp_path / "kiln" / "week1.csv", ["Time", "temp", "flow"], healthy_rows(100), sep="\t")
    write(tmp_path / "kiln" / "week2.csv", ["Time", "temp", "flow"], healthy_rows(50, seed=2))
    import pandas as pd

    pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=80, freq="min"), "temp": np.linspace(1, 2, 80),
                  "flow": np.cos(np.arange(80))}).to_parquet(tmp_path / "lathe.parquet")
    assert list_assets(tmp_path) == ["kiln", "lathe", "mill", "press"]
    mill = read_asset(tmp_path, "mill")
    assert mill.columns == ["temp", "flow"] and mill.label_columns == ["anomaly"] and mill.labelled
    kiln = read_asset(tmp_path, "kiln")
    assert [s.rows for s in kiln.segments] == [100, 50] and kiln.timestamp_column == "Time"
    assert read_asset(tmp_path, "lathe").segments[0].times[1] - read_asset(tmp_path, "lathe").segments[0].times[0] == 60


def test_problems_are_reported_with_what_was_done_about_them(tmp_path):
    rows = healthy_rows(200)
    rows[5][0] = "not a time"
    rows[10][1] = "ERR"
    for i in range(20, 26):
        rows[i][2] = ""
    rows[30], rows[31] = rows[31], rows[30]  # out of order
    rows[40][0] = rows[39][0]  # duplicate time
    del rows[100:120]  # a gap of 20 minutes
    write(tmp_path / "pump.csv", ["timestamp", "temp", "flow", "stuck"], [r + [7.0] for r in rows])
    data = read_asset(tmp_path, "pump")
    text = reasons(data)
    assert "1 row(s) with unparsable timestamps dropped, e.g. 'not a time'" in text
    assert "sensor 'temp': 1 non-numeric reading(s), e.g. 'ERR'" in text
    assert "rows are not in time order; sorted by timestamp" in text
    assert "1 row(s) repeat the timestamp of the row before" in text
    assert "gap(s) longer than" in text
    assert "sensor 'flow': 6 missing reading(s), longest run 6 rows; filled with the previous reading" in text
    assert data.excluded == {"stuck": "constant (7): it carries no information"} and data.sensors == ["temp", "flow"]
    assert np.all(np.diff(data.segments[0].times) > 0)


def test_unusable_assets_fail_with_the_reason(tmp_path):
    write(tmp_path / "words.csv", ["timestamp", "state"], [[t, "RUNNING"] for t in minutes(50)])
    with pytest.raises(DatasetError, match="no usable sensor .*state: 100% of its readings are missing or not numbers"):
        read_asset(tmp_path, "words")
    write(tmp_path / "a" / "one.csv", ["timestamp", "temp"], healthy_rows(10))
    write(tmp_path / "a" / "two.csv", ["timestamp", "pressure"], healthy_rows(10))
    with pytest.raises(DatasetError, match="two.csv has other columns than one.csv"):
        read_asset(tmp_path, "a")
    with pytest.raises(DatasetError, match="asset 'nothing' is not in"):
        read_asset(tmp_path, "nothing")


def test_labels_from_time_ranges_and_too_little_normal_data(tmp_path):
    write(tmp_path / "pump.csv", ["timestamp", "temp", "flow"], healthy_rows(300))
    write(tmp_path / "pump.labels.csv", ["start", "end"], [["2026-01-01T03:00:00Z", "2026-01-01T03:09:00Z"]])
    data = read_asset(tmp_path, "pump")
    assert int(data.segments[0].labels.sum()) == 10 and data.segments[0].labels[180] == 1
    write(tmp_path / "tiny.csv", ["timestamp", "temp", "flow"], healthy_rows(60))
    manifest, quality, failures = preprocess(tmp_path, ["pump", "tiny"], seed=0)
    assert quality["classes"]["pump"]["anomalous_rows"] == 10 and quality["classes"]["pump"]["labelled"] is True
    assert failures == ["asset 'tiny' has 24 normal rows to fit on in its training period; at least 50 are needed"]
    assert manifest["classes"]["pump"]["segments"] == [{"segment": "pump.csv", "rows": 300}]

"""The sensor bench's adapters and counting: what its tables are computed from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.sensors.bench import Counts, cmapss_assets, demo_table, merged, offline_flags, skab_assets, variant
from pipelines.sensors.datasets import read_asset


def test_rates_follow_skab_scorer():
    counts = Counts()
    counts.add(np.array([1, 1, 1, 0, 0, 0, 0, 0]), np.array([1, 1, 0, 1, 0, 0, 0, 0]))
    rates = counts.rates()
    assert rates["f1"] == pytest.approx(2 / (2 + (1 + 1) / 2))
    assert rates["far"] == pytest.approx(100 / 5)
    assert rates["mar"] == pytest.approx(100 / 3)


def test_offline_mapping_needs_every_window_over_the_row():
    context = 4  # window flags are indexed by each window's last row
    flags = np.zeros(30, bool)
    flags[10:16] = True  # windows ending at rows 10 … 15 are anomalous
    mapped = offline_flags(flags, context)
    # row r needs the windows ending at r … r + 2: rows 10 … 13
    assert np.flatnonzero(mapped).tolist() == [10, 11, 12, 13]
    flags[:] = True
    assert not offline_flags(flags, context)[30 - 2 * context + 2:].any()  # as SKAB's notebooks
    assert offline_flags(flags, 1).all()  # row-wise: unchanged


def test_variant_parses_settings():
    assert variant("lstm_ae") == ("lstm_ae", {})
    assert variant("lstm_ae:aggregate=sum;window=10") == ("lstm_ae", {"aggregate": "sum", "window": "10"})


def _engine_rows(unit: int, cycles: int) -> list[str]:
    return [" ".join([str(unit), str(c), "0.001", "0.0", "100.0"] + [f"{500 + unit + 0.01 * c + s:.3f}" for s in range(21)])
            for c in range(1, cycles + 1)]


def test_cmapss_adapter_labels_the_last_30_cycles_and_leaves_out_engines_without_rul(tmp_path):
    source = tmp_path / "cmapss"
    source.mkdir()
    (source / "train_FD001.txt").write_text("\n".join(_engine_rows(1, 80) + _engine_rows(2, 60)) + "\n")
    (source / "test_FD001.txt").write_text("\n".join(_engine_rows(1, 40) + _engine_rows(2, 20) + _engine_rows(3, 50)) + "\n")
    (source / "RUL_FD001.txt").write_text("5\n100\n")
    train_root, test_root, notes = cmapss_assets(source, tmp_path / "out")
    training = read_asset(train_root, "fd001")
    assert [s.rows for s in training.segments] == [80, 60]
    assert training.segments[0].labels.tolist() == [0] * 49 + [1] * 31  # RUL 30 … 0
    test = read_asset(test_root, "fd001")
    assert [s.name for s in test.segments] == ["engine-001.csv", "engine-002.csv"]
    assert test.segments[0].labels.tolist() == [0] * 14 + [1] * 26  # RUL at the last cycle: 5
    assert not test.segments[1].labels.any()
    assert "test engines 3–3 have no RUL value" in "; ".join(notes)


def test_skab_adapter_makes_one_asset_per_file(tmp_path):
    source = tmp_path / "skab"
    for group, count in (("valve1", 2), ("valve2", 1)):
        (source / group).mkdir(parents=True)
        for index in range(count):
            frame = pd.DataFrame({"datetime": pd.date_range("2020-03-09 10:00", periods=5, freq="s").astype(str),
                                  "Current": np.arange(5.0) + index, "anomaly": [0, 0, 0, 1, 1], "changepoint": 0})
            frame.to_csv(source / group / f"{index}.csv", sep=";", index=False)
    root, assets = skab_assets(source, tmp_path / "assets")
    assert assets == ["valve1-0", "valve1-1", "valve2-0"]
    data = read_asset(root, "valve1-1")
    assert data.sensors == ["Current"] and data.segments[0].labels.tolist() == [0, 0, 0, 1, 1]


def test_a_part_run_alone_replaces_its_own_section_and_keeps_the_others():
    previous = ("# IVADAS sensor benchmark\n\nCommand: `all parts`\n\nMachine: A\n\n## SKAB\n\nskab table\n\n"
                "## Demo pumps\n\nold demo table\n\n## Per-window latency\n\nlatency table\n")
    fresh = "# IVADAS sensor benchmark\n\nCommand: `demo only`\n\nMachine: B\n\n## Demo pumps\n\nnew demo table\n"
    text = merged(previous, fresh)
    assert "Command: `all parts`" in text.split("## ")[0]  # the kept sections' command stays on top
    assert "skab table" in text and "latency table" in text and "old demo table" not in text
    demo = text.split("## Demo pumps")[1].split("## ")[0]
    assert "new demo table" in demo and "Command: `demo only`" in demo and "Machine: B" in demo
    assert text.index("## SKAB") < text.index("## Demo pumps") < text.index("## Per-window latency")  # order kept


def test_the_demo_table_averages_assets_then_seeds():
    def run(f1s, far):
        return {"train_s": 1.0, "classes": {f"pump-{i}": {"f1": f1, "far": far, "mar": 0.5, "auroc": 0.9,
                                                          "event_recall": 1.0, "false_events": 2}
                                             for i, f1 in enumerate(f1s)}}

    table = demo_table({"pca": [run([0.6, 0.8], 0.02), run([0.8, 1.0], 0.04)]}, seeds=2)
    row = next(line for line in table.splitlines() if line.startswith("| pca"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "0.800 (0.700–0.900)"  # seed means 0.7 and 0.9
    assert cells[2] == "3.0 (2.0–4.0)"  # FAR in %

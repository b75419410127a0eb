"""Deterministic synthetic machine data for the demo and the tests: a pump's sensors over days.

The sensors follow one load with a daily cycle, each with its own gain, lag and noise, so that
they move together as a real machine's do. The second half of the series holds labelled faults of
the kinds maintenance engineers meet: a vibration spike burst, a bearing-temperature drift, a
stuck flow sensor, and a clogged line (current up while the flow stays put). The first half is
normal: it is the training period.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

SENSORS = ("motor_current", "flow_rate", "pressure", "bearing_temp", "vibration", "voltage")
START = datetime(2026, 3, 2, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Fault:
    name: str
    start: float  # share of the series
    length: float  # share of the series


#: Where the faults sit, as shares of the series (all in the second half, the evaluation period).
FAULTS = (
    Fault("vibration_spikes", 0.56, 0.004),
    Fault("bearing_drift", 0.64, 0.03),
    Fault("stuck_flow_sensor", 0.76, 0.02),
    Fault("clogged_line", 0.88, 0.02),
)


def generate_series(rows: int = 4032, interval_s: float = 150.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times in epoch seconds, readings rows × SENSORS, labels) of one pump."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows) * interval_s
    day = 2 * np.pi * t / 86_400
    noise = np.zeros(rows)
    for i in range(1, rows):  # slowly wandering demand on top of the daily cycle
        noise[i] = 0.98 * noise[i - 1] + rng.normal(0, 0.02)
    load = 0.6 + 0.25 * np.sin(day - 1.2) + noise
    lagged = np.copy(load)
    for i in range(1, rows):  # the bearing warms with the load, a little later
        lagged[i] = 0.95 * lagged[i - 1] + 0.05 * load[i]
    values = np.column_stack([
        10 + 8 * load + rng.normal(0, 0.15, rows),
        50 + 40 * load + rng.normal(0, 0.8, rows),
        2 + 1.5 * load + rng.normal(0, 0.04, rows),
        20 + 3 * np.sin(day - 2.0) + 15 * lagged + rng.normal(0, 0.2, rows),
        0.5 + 0.2 * load + np.abs(rng.normal(0, 0.03, rows)),
        400 + rng.normal(0, 1.0, rows),
    ])
    labels = np.zeros(rows, np.int8)
    for fault in FAULTS:
        start, length = int(fault.start * rows), max(3, int(fault.length * rows))
        _inject(fault.name, values, slice(start, start + length), rng)
        labels[start:start + length] = 1
    return START.timestamp() + t, values, labels


def _inject(name: str, values: np.ndarray, span: slice, rng) -> None:
    count = span.stop - span.start
    column = {s: i for i, s in enumerate(SENSORS)}
    if name == "vibration_spikes":
        values[span, column["vibration"]] += rng.uniform(0.4, 0.9, count)
    elif name == "bearing_drift":
        values[span, column["bearing_temp"]] += np.linspace(1.0, 9.0, count)
    elif name == "stuck_flow_sensor":
        values[span, column["flow_rate"]] = values[span.start - 1, column["flow_rate"]]
    elif name == "clogged_line":
        values[span, column["motor_current"]] *= 1.3
        values[span, column["pressure"]] *= 1.25


def write_asset(path: Path, times: np.ndarray, values: np.ndarray, labels: np.ndarray | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["timestamp", *SENSORS] + (["anomaly"] if labels is not None else [])
    lines = [",".join(header)]
    for i, (moment, row) in enumerate(zip(times, values)):
        stamp = datetime.fromtimestamp(float(moment), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        fields = [stamp, *(f"{v:.4f}" for v in row)] + ([str(int(labels[i]))] if labels is not None else [])
        lines.append(",".join(fields))
    path.write_text("\n".join(lines) + "\n")
    return path


def generate(root: str | Path, assets=("pump-1",), rows: int = 4032, interval_s: float = 150.0, seed: int = 0) -> Path:
    """Write `<root>/<asset>.csv` for every asset (a week of 2.5-minute readings by default)."""
    root = Path(root)
    for asset in assets:
        times, values, labels = generate_series(rows, interval_s, seed + zlib.crc32(asset.encode()) % 1000)
        write_asset(root / f"{asset}.csv", times, values, labels)
    return root


def timestamps(times: np.ndarray) -> list[str]:
    return [(START + timedelta(seconds=float(m) - START.timestamp())).strftime("%Y-%m-%dT%H:%M:%SZ") for m in times]

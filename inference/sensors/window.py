"""A sensor window as a request carries it, checked and put into the model's column order.

A window is rows × sensors, oldest row first, with the sensors' names (`sensors`) and optional
`timestamps` (ISO 8601 text or epoch seconds, strictly increasing). Every problem a client can
cause is a clear 4xx error: the wrong number of columns, unknown or duplicated sensor names,
strings, booleans, NaN or infinite readings (and integers too large to be a float), an empty or
over-long window, unsorted or duplicate timestamps, epoch timestamps outside the years 1-9999.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from inference.errors import BadRequest, PayloadTooLarge

#: Column names that are not sensors, recognised in files and CSV bodies (case-insensitive).
TIMESTAMP_COLUMNS = ("timestamp", "datetime", "time", "date")
LABEL_COLUMNS = ("anomaly", "label", "is_anomaly")
IGNORED_COLUMNS = ("changepoint",)

#: Most rows one window may hold: a day of 1 Hz data is 86,400; windows are minutes or hours.
MAX_WINDOW_ROWS = 10_000
MAX_SENSORS = 512
#: Epoch seconds of 0001-01-01 and 9999-12-31T23:59:59 UTC: the dates ISO 8601 timestamps can name too.
EARLIEST_EPOCH, LATEST_EPOCH = -62_135_596_800, 253_402_300_799


@dataclass
class SensorWindow:
    """Readings in the model's sensor order (float64) and, when sent, epoch seconds per row."""

    values: np.ndarray
    times: np.ndarray | None
    #: the timestamps as the client sent them (events are reported in the client's own terms)
    labels: list | None

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])

    def row_label(self, row: int):
        return self.labels[row] if self.labels is not None else row


def parse_window(window, sensors, timestamps, columns: list[str], required: list[str]) -> SensorWindow:
    """Check a JSON window against an asset whose data has `columns` and whose model reads `required`.

    Without `sensors`, the window's columns must be the asset's `columns` in that order.
    """
    rows = _rows(window)
    names = _names(sensors, len(rows[0]), columns)
    missing = [name for name in required if name not in names]
    if missing:
        raise BadRequest(f"the window lacks sensor(s) {missing}; the model reads {required}")
    values = _matrix(rows)
    order = [names.index(name) for name in required]
    times, labels = parse_timestamps(timestamps, len(rows)) if timestamps is not None else (None, None)
    return SensorWindow(values[:, order], times, labels)


def _rows(window) -> list:
    if not isinstance(window, list) or not window:
        raise BadRequest("window is required: a non-empty list of rows, each a list of sensor readings")
    if len(window) > MAX_WINDOW_ROWS:
        raise PayloadTooLarge(f"the window has {len(window)} rows; at most {MAX_WINDOW_ROWS} per request")
    if not all(isinstance(row, list) for row in window):
        raise BadRequest("every row of window must be a list of sensor readings")
    widths = {len(row) for row in window}
    if len(widths) != 1 or 0 in widths:
        raise BadRequest(f"every row of window must hold the same number of readings, at least one (found {sorted(widths)})")
    if widths.pop() > MAX_SENSORS:
        raise BadRequest(f"a window holds at most {MAX_SENSORS} sensors")
    return window


def _names(sensors, width: int, columns: list[str]) -> list[str]:
    if sensors is None:
        if width != len(columns):
            raise BadRequest(f"the window has {width} columns but the asset has {len(columns)} sensors {columns}; "
                             "send them in that order or name them in 'sensors'")
        return list(columns)
    if not isinstance(sensors, list) or not all(isinstance(s, str) and s for s in sensors):
        raise BadRequest("sensors must be a list of sensor names")
    if len(sensors) != width:
        raise BadRequest(f"sensors names {len(sensors)} columns but each window row has {width}")
    duplicated = sorted({s for s in sensors if sensors.count(s) > 1})
    if duplicated:
        raise BadRequest(f"sensor name(s) {duplicated} appear more than once")
    unknown = [s for s in sensors if s not in columns]
    if unknown:
        raise BadRequest(f"unknown sensor(s) {unknown}; this asset has {columns}")
    return list(sensors)


def _matrix(rows: list) -> np.ndarray:
    for row_index, row in enumerate(rows):
        for column, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadRequest(f"window row {row_index}, column {column}: {value!r} is not a number")
    try:
        values = np.asarray(rows, dtype=np.float64)
    except OverflowError:  # a JSON integer beyond the float range (e.g. 400 digits)
        row_index, column = next((r, c) for r, row in enumerate(rows) for c, value in enumerate(row)
                                 if isinstance(value, int) and abs(value) > _FLOAT_MAX)
        raise BadRequest(f"window row {row_index}, column {column}: {_brief(rows[row_index][column])} is too large "
                         "to be a reading") from None
    bad = ~np.isfinite(values)
    if bad.any():
        row_index, column = (int(i) for i in np.argwhere(bad)[0])
        raise BadRequest(f"window row {row_index}, column {column} is NaN or infinite; fill or drop it before sending "
                         f"({int(bad.sum())} such reading(s))")
    return values


def parse_timestamps(timestamps, count: int) -> tuple[np.ndarray, list]:
    """Epoch seconds of `count` strictly increasing timestamps (ISO 8601 text or epoch numbers)."""
    if not isinstance(timestamps, list) or len(timestamps) != count:
        size = len(timestamps) if isinstance(timestamps, list) else "no list of"
        raise BadRequest(f"timestamps must hold one entry per row: {size} entries for {count} rows")
    seconds = np.array([_epoch_seconds(value, index) for index, value in enumerate(timestamps)])
    steps = np.diff(seconds)
    if (steps <= 0).any():
        index = int(np.argmax(steps <= 0)) + 1
        problem = "repeats" if steps[index - 1] == 0 else "is earlier than"
        raise BadRequest(f"timestamps must increase strictly: row {index} ({timestamps[index]!r}) {problem} the row before")
    return seconds, list(timestamps)


def _epoch_seconds(value, index: int) -> float:
    if isinstance(value, bool):
        raise BadRequest(f"timestamp of row {index}: {value!r} is not a time")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(f"timestamp of row {index} is not finite")
        if not EARLIEST_EPOCH <= value <= LATEST_EPOCH:  # exact for integers of any size
            raise BadRequest(f"timestamp of row {index}: {_brief(value)} is not epoch seconds of a date in the years "
                             "1-9999")
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"timestamp of row {index}: {value!r} is not ISO 8601 (e.g. 2026-03-01T12:00:00Z)") from None
        if parsed.tzinfo is None:  # a plant's local clock without a zone: read as UTC, consistently
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    raise BadRequest(f"timestamp of row {index}: {value!r} is neither ISO 8601 text nor epoch seconds")


_FLOAT_MAX = float(np.finfo(np.float64).max)  # a Python float: compared exactly with any int


def _brief(value) -> str:
    """A number as a message can quote it: a 400-digit integer is cut short."""
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text.lstrip('-'))} digits)"

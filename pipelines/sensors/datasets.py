"""Sensor datasets: one table per asset, read so that every problem is reported, never hidden.

Layout (CSV with `,` `;` or tab separators, or Parquet)::

    <root>/<asset>.csv                     one recording of the asset
    <root>/<asset>/*.csv                   several recordings (segments; windows never span two)
    <root>/<asset>.labels.csv              optional anomalous time ranges: columns start,end
    <root>/<asset>/labels.csv              (the same, for a folder)

A table has a timestamp column (`timestamp`, `datetime`, `time` or `date`; or none, and rows are
equally spaced), one numeric column per sensor, and optionally a 0/1 label column (`anomaly`,
`label` or `is_anomaly`). `changepoint` columns are ignored. What is read is reported per asset:
unparsable timestamps (rows dropped), unsorted or duplicate times, gaps and irregular sampling,
NaN runs (filled from the previous reading for training), non-numeric sensors and constant sensors
(both left out of the model), and the amount of normal data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from inference.errors import DatasetError
from inference.sensors.sensor_model import sniff_delimiter
from inference.sensors.window import IGNORED_COLUMNS, LABEL_COLUMNS, TIMESTAMP_COLUMNS

TABLE_SUFFIXES = (".csv", ".parquet")
#: A sensor with more unparsable or missing readings than this share is left out of the model.
MAX_MISSING_FRACTION = 0.2
#: An interval this many times the median interval is a gap.
GAP_FACTOR = 5.0


@dataclass
class Segment:
    """One recording: readings (rows × columns, float, NaN where missing), times, labels."""

    name: str
    values: np.ndarray
    times: np.ndarray | None  # epoch seconds, increasing
    labels: np.ndarray | None  # 0/1 per row
    timestamps: list | None = None  # as written in the file (events quote them)

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])


@dataclass
class AssetData:
    name: str
    columns: list[str]  # every sensor column, in file order
    segments: list[Segment]
    timestamp_column: str | None = None
    label_columns: list[str] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)
    #: sensors left out of the model, with the reason
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def sensors(self) -> list[str]:
        return [c for c in self.columns if c not in self.excluded]

    @property
    def labelled(self) -> bool:
        return all(segment.labels is not None for segment in self.segments)

    def sensor_values(self, segment: Segment) -> np.ndarray:
        return segment.values[:, [self.columns.index(s) for s in self.sensors]]

    def problem(self, where: str, reason: str) -> None:
        self.problems.append({"path": where, "reason": reason})


def list_assets(root: str | Path) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    names = set()
    for path in root.iterdir():
        if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES and not path.name.endswith(".labels.csv"):
            names.add(path.stem)
        elif path.is_dir() and _tables(path):
            names.add(path.name)
    return sorted(names)


def _tables(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES and p.name != "labels.csv")


def asset_files(root: Path, name: str) -> tuple[list[Path], Path | None]:
    """(tables, label-ranges file or None) of one asset."""
    folder = root / name
    if folder.is_dir():
        labels = folder / "labels.csv"
        return _tables(folder), labels if labels.is_file() else None
    for suffix in TABLE_SUFFIXES:
        if (root / f"{name}{suffix}").is_file():
            labels = root / f"{name}.labels.csv"
            return [root / f"{name}{suffix}"], labels if labels.is_file() else None
    raise DatasetError(f"asset {name!r} is not in {root}: expected {name}.csv, {name}.parquet or a folder {name}/")


def read_asset(root: str | Path, name: str) -> AssetData:
    root = Path(root)
    tables, ranges_file = asset_files(root, name)
    if not tables:
        raise DatasetError(f"asset {name!r}: the folder {root / name} holds no CSV or Parquet file")
    frames = [(path, read_table(path)) for path in tables]
    columns, timestamp_column, label_columns = _layout(name, frames)
    data = AssetData(name, columns, [], timestamp_column, label_columns)
    ranges = read_label_ranges(ranges_file) if ranges_file else None
    for path, frame in frames:
        segment = _segment(data, path, frame, ranges)
        if segment.rows:
            data.segments.append(segment)
    if not data.segments:
        raise DatasetError(f"asset {name!r} has no readable rows")
    _judge_sensors(data)
    return data


def read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        with open(path, encoding="utf-8-sig") as handle:
            header = handle.readline()
        return pd.read_csv(path, sep=sniff_delimiter(header), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, ImportError) as exc:
        raise DatasetError(f"{path} cannot be read as a table: {exc}") from None


def _layout(name: str, frames) -> tuple[list[str], str | None, list[str]]:
    """Sensor columns, timestamp column and label columns, the same in every file of the asset."""
    first_path, first = frames[0]
    header = [str(c).strip() for c in first.columns]
    for path, frame in frames[1:]:
        if [str(c).strip() for c in frame.columns] != header:
            raise DatasetError(f"asset {name!r}: {path.name} has other columns than {first_path.name}")
    lowered = {c.lower(): c for c in header}
    timestamp = next((lowered[c] for c in TIMESTAMP_COLUMNS if c in lowered), None)
    labels = [lowered[c] for c in LABEL_COLUMNS if c in lowered]
    ignored = {lowered[c] for c in IGNORED_COLUMNS if c in lowered}
    columns = [c for c in header if c != timestamp and c not in labels and c not in ignored]
    if not columns:
        raise DatasetError(f"asset {name!r}: {first_path.name} has no sensor column (only {header})")
    return columns, timestamp, labels


def _segment(data: AssetData, path: Path, frame: pd.DataFrame, ranges) -> Segment:
    frame = frame.rename(columns=lambda c: str(c).strip())
    times, timestamps = None, None
    if data.timestamp_column:
        frame, times, timestamps = _parse_times(data, path, frame)
    values = np.column_stack([_numeric(data, path, frame[c], c) for c in data.columns]) if len(frame) else \
        np.zeros((0, len(data.columns)))
    labels = _labels(data, path, frame, times, ranges)
    return Segment(path.name, values, times, labels, timestamps)


def _parse_times(data: AssetData, path: Path, frame: pd.DataFrame):
    raw = frame[data.timestamp_column]
    parsed = pd.to_datetime(raw, errors="coerce", utc=True) if pd.api.types.is_numeric_dtype(raw) else \
        pd.to_datetime(raw.astype(str).str.strip(), errors="coerce", utc=True, format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        data.problem(str(path), f"{int(bad.sum())} row(s) with unparsable timestamps dropped, e.g. {raw[bad].iloc[0]!r}")
        frame, parsed = frame[~bad], parsed[~bad]
    seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    order = np.argsort(seconds, kind="stable")
    if (np.diff(seconds) < 0).any():
        data.problem(str(path), "rows are not in time order; sorted by timestamp")
        frame, seconds = frame.iloc[order], seconds[order]
    duplicate = np.concatenate([[False], np.diff(seconds) == 0])
    if duplicate.any():
        data.problem(str(path), f"{int(duplicate.sum())} row(s) repeat the timestamp of the row before; the later ones dropped")
        frame, seconds = frame[~duplicate], seconds[~duplicate]
    _report_sampling(data, path, seconds)
    return frame, seconds, [str(v) for v in frame[data.timestamp_column]]


def _report_sampling(data: AssetData, path: Path, seconds: np.ndarray) -> None:
    steps = np.diff(seconds)
    if steps.size < 2:
        return
    median = float(np.median(steps))
    gaps = steps > GAP_FACTOR * median
    if gaps.any():
        data.problem(str(path), f"{int(gaps.sum())} gap(s) longer than {GAP_FACTOR:g}× the {median:g} s sampling "
                                f"interval, the longest {float(steps.max()):g} s")
    irregular = np.abs(steps - median) > 0.5 * median
    if irregular.mean() > 0.05:
        data.problem(str(path), f"irregular sampling: {irregular.mean():.0%} of intervals differ from the median "
                                f"{median:g} s by more than half")


def _numeric(data: AssetData, path: Path, column: pd.Series, name: str) -> np.ndarray:
    textual = not pd.api.types.is_numeric_dtype(column)
    text = column.astype(str).str.strip() if textual else column
    values = np.array(pd.to_numeric(text, errors="coerce"), dtype=np.float64)
    if textual:
        empty = (text == "") | text.str.lower().isin(("nan", "na", "null", "none"))
        unparsable = np.isnan(values) & ~empty.to_numpy()
        if unparsable.any():
            data.problem(str(path), f"sensor {name!r}: {int(unparsable.sum())} non-numeric reading(s), e.g. "
                                    f"{column[unparsable].iloc[0]!r}")
    values[~np.isfinite(values)] = np.nan
    return values


def _labels(data: AssetData, path: Path, frame: pd.DataFrame, times, ranges) -> np.ndarray | None:
    if data.label_columns:
        raw = pd.to_numeric(frame[data.label_columns[0]], errors="coerce").to_numpy()
        bad = ~np.isin(raw, (0, 1))
        if bad.any():
            data.problem(str(path), f"{int(bad.sum())} label(s) in {data.label_columns[0]!r} are not 0 or 1; read as 0")
        return np.where(bad, 0, raw).astype(np.int8)
    if ranges is not None:
        if times is None:
            raise DatasetError(f"asset {data.name!r}: anomalous time ranges need a timestamp column in {path.name}")
        labels = np.zeros(len(times), np.int8)
        for start, end in ranges:
            labels[(times >= start) & (times <= end)] = 1
        return labels
    return None


def read_label_ranges(path: Path) -> list[tuple[float, float]]:
    frame = read_table(path)
    lowered = {str(c).strip().lower(): c for c in frame.columns}
    if "start" not in lowered or "end" not in lowered:
        raise DatasetError(f"{path} must have columns start,end (anomalous time ranges)")
    start = pd.to_datetime(frame[lowered["start"]], errors="coerce", utc=True, format="mixed")
    end = pd.to_datetime(frame[lowered["end"]], errors="coerce", utc=True, format="mixed")
    if start.isna().any() or end.isna().any():
        raise DatasetError(f"{path}: every start and end must be a time")
    epoch = pd.Timestamp(0, tz="UTC")
    return list(zip((start - epoch).dt.total_seconds(), (end - epoch).dt.total_seconds()))


def _judge_sensors(data: AssetData) -> None:
    """Leave out sensors the model cannot learn from: mostly missing, or constant."""
    values = np.concatenate([segment.values for segment in data.segments])
    for index, name in enumerate(data.columns):
        column = values[:, index]
        missing = float(np.isnan(column).mean())
        if missing > MAX_MISSING_FRACTION:
            data.excluded[name] = f"{missing:.0%} of its readings are missing or not numbers"
        elif np.nanstd(column) == 0:
            data.excluded[name] = f"constant ({np.nanmax(column):g}): it carries no information"
        else:
            _report_nan_runs(data, name, [segment.values[:, index] for segment in data.segments])
    for name, reason in data.excluded.items():
        data.problem(data.name, f"sensor {name!r} left out of the model: {reason}")
    if not data.sensors:
        raise DatasetError(f"asset {data.name!r}: no usable sensor ({'; '.join(f'{k}: {v}' for k, v in data.excluded.items())})")


def _report_nan_runs(data: AssetData, name: str, columns: list[np.ndarray]) -> None:
    missing = np.concatenate([np.isnan(c) for c in columns])
    if not missing.any():
        return
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    longest = int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())
    data.problem(data.name, f"sensor {name!r}: {int(missing.sum())} missing reading(s), longest run {longest} rows; "
                            "filled with the previous reading")


def filled(values: np.ndarray) -> np.ndarray:
    """Missing readings replaced by the previous one (the first ones by the next one)."""
    frame = pd.DataFrame(values)
    return frame.ffill().bfill().to_numpy(dtype=np.float64)

"""The serving code path of every sensor kind: a window in; verdict, contributions, events and scores out.

A kind supplies one `SeriesScorer` per asset (its ONNX graph, scaler and calibration); this class
checks the window, scores it, calibrates, and explains the answer the way a maintenance engineer
reads it: the worst moment of the window, which sensors drive it, and the events (spans above
the threshold) with their top sensors. Evaluation scores test series through it, so reported
metrics are those of serving.
"""

from __future__ import annotations

import csv
import io
import time

import numpy as np

from inference.input_statistics import window_statistics
from inference.errors import BadRequest
from inference.model import ServedModel, WrongModality, check_threshold, parse_threshold
from inference.sensors.events import find_spans
from inference.sensors.scorer import ScoredSeries, SeriesScorer
from inference.sensors.window import (IGNORED_COLUMNS, LABEL_COLUMNS, MAX_WINDOW_ROWS, TIMESTAMP_COLUMNS, SensorWindow,
                                      parse_window)

#: Sensors listed for an event or the peak row (the rest are in the full contributions list).
TOP_SENSORS = 3
CSV_TYPES = ("text/csv", "application/csv")


class SensorModel(ServedModel):
    modality = "sensors"

    def __init__(self, manifest: dict, scorers: dict[str, SeriesScorer], root=None, version: str | None = None):
        super().__init__(manifest, root, version)
        self.scorers = scorers

    def scorer_for(self, asset: str) -> SeriesScorer:
        return self.scorers[self.check_class(asset)]

    # ------------------------------------------------------------------------------ requests

    def predict_instance(self, class_name: str, instance: dict) -> dict:
        scorer = self.scorer_for(class_name)
        window = parse_window(instance.get("window"), instance.get("sensors"), instance.get("timestamps"),
                              list(scorer.spec.columns), list(scorer.spec.sensors))
        return self.predict_window(window, class_name, parse_threshold(instance.get("threshold")), instance.get("outputs"))

    def predict_body(self, body: bytes, content_type: str, attributes: dict) -> dict:
        if content_type not in CSV_TYPES:
            raise WrongModality(f"the {self.kind} model takes text/csv or application/json windows, not {content_type}")
        class_name = self.class_from_attributes(attributes)
        scorer = self.scorer_for(class_name)
        window = self.csv_window(body, class_name)
        return self.predict_window(window, class_name, parse_threshold(attributes.get("threshold")), attributes.get("outputs"))

    def csv_window(self, body: bytes, asset: str) -> SensorWindow:
        """A CSV window (header row) checked against the asset, its timestamp column read as such."""
        spec, entry = self.scorer_for(asset).spec, self.manifest["classes"][asset]
        names, rows, timestamps = read_csv_window(body, entry.get("timestamp_column"), entry.get("label_columns"))
        return parse_window(rows, names, timestamps, list(spec.columns), list(spec.sensors))

    def predict_window(self, window: SensorWindow, class_name: str, threshold: float | None = None, outputs=None) -> dict:
        """Verdict for one checked window; `threshold` overrides 0.5 on the normalised score."""
        threshold = check_threshold(threshold)
        outputs = self.check_outputs(outputs)
        started = time.perf_counter()
        scorer = self.scorer_for(class_name)
        scored = scorer.score(window.values, window.times)
        model_done = time.perf_counter()
        normalised = scorer.calibration.normalise(scored.raw)
        peak = int(np.nanargmax(normalised))
        result = {
            "class_name": class_name,
            "model": {"kind": self.kind, "version": self.version},
            "anomaly_score": round(float(normalised[peak]), 6),
            "raw_score": round(float(scored.raw[peak]), 6),
            "threshold": threshold,
            "raw_threshold": round(scorer.calibration.threshold, 6),
            "is_anomaly": bool(normalised[peak] >= threshold),
            "rows": window.rows,
            "scored_rows": int(np.isfinite(scored.raw).sum()),
            "peak_at": window.row_label(peak),
            # for drift monitoring: kept in the inspection log, not returned by the API
            "input_statistics": {"sensors": window_statistics(window.values, list(scorer.spec.sensors))},
        }
        if "contributions" in outputs:
            result["contributions"] = self.contributions(scored, window, peak)
        if "events" in outputs:
            result["events"] = self.events(scored, normalised, window, threshold)
        if "scores" in outputs:
            result["scores"] = [None if np.isnan(v) else round(float(v), 6) for v in normalised]
        result["timing_ms"] = {"model": round((model_done - started) * 1000, 2),
                               "outputs": round((time.perf_counter() - model_done) * 1000, 2)}
        return result

    def contributions(self, scored: ScoredSeries, window: SensorWindow, row: int) -> list[dict]:
        """Every sensor's share of the score at `row`, largest first, with its reading there."""
        sensors = scored.scorer.spec.sensors
        shares = scored.contributions([row])[0]
        order = np.argsort(-shares, kind="stable")
        return [{"sensor": sensors[i], "share": round(float(shares[i]), 4), "value": float(window.values[row, i])} for i in order]

    def events(self, scored: ScoredSeries, normalised: np.ndarray, window: SensorWindow, threshold: float) -> list[dict]:
        spans = find_spans(normalised, threshold, scored.scorer.spec.merge_gap)
        sensors = scored.scorer.spec.sensors
        events = []
        for span in spans:
            rows = np.arange(span.start, span.end + 1)
            rows = rows[np.isfinite(normalised[rows])]
            shares = scored.contributions(rows).mean(axis=0)
            top = np.argsort(-shares, kind="stable")[:TOP_SENSORS]
            event = {
                "start": window.row_label(span.start),
                "end": window.row_label(span.end),
                "start_row": span.start,
                "end_row": span.end,
                "rows": span.rows,
                "peak_score": round(float(normalised[span.peak]), 6),
                "peak_at": window.row_label(span.peak),
                "top_sensors": [{"sensor": sensors[i], "share": round(float(shares[i]), 4)} for i in top if shares[i] > 0],
                "ongoing": span.end == window.rows - 1,
            }
            if window.times is not None:
                event["duration_s"] = round(float(window.times[span.end] - window.times[span.start]), 3)
            events.append(event)
        return events

    # ------------------------------------------------------------------------------ evaluation

    def score_series(self, values: np.ndarray, times: np.ndarray | None, asset: str) -> ScoredSeries:
        """Raw scores of a whole series of one asset (rows × the model's sensors), for evaluation."""
        return self.scorer_for(asset).score(values, times)

    def describe_class(self, class_name: str) -> dict:
        spec = self.scorers[class_name].spec
        entry = self.manifest["classes"][class_name]
        return {
            "sensors": list(spec.sensors),
            "columns": list(spec.columns),
            "ignored_sensors": entry.get("ignored_sensors", {}),
            "min_rows": spec.min_rows,
            "needs_timestamps": spec.time_features,
            "sampling_seconds": entry.get("sampling_seconds"),
        }

    def describe_model(self) -> dict:
        return {"max_window_rows": MAX_WINDOW_ROWS}


def read_csv_window(body: bytes, timestamp_column: str | None = None,
                    label_columns=None) -> tuple[list[str], list[list[float]], list | None]:
    """(sensor names, rows, timestamps) of a CSV window with a header row; `,` `;` or tab separated.

    Without `timestamp_column` (or when the body has no such column) a column of a usual timestamp
    name is the time; label columns (and change points) are never readings.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("the CSV window is not UTF-8 text") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise BadRequest("the CSV window needs a header row and at least one row of readings")
    delimiter = sniff_delimiter(lines[0])
    table = list(csv.reader(lines, delimiter=delimiter))
    header = [name.strip() for name in table[0]]
    lowered = [name.lower() for name in header]
    skip = {name for name in header if name in (label_columns or ()) or name.lower() in LABEL_COLUMNS + IGNORED_COLUMNS}
    if timestamp_column not in header:  # not given, or the sender names its time column differently
        timestamp_column = next((header[lowered.index(n)] for n in TIMESTAMP_COLUMNS if n in lowered), None)
    time_index = header.index(timestamp_column) if timestamp_column in header else None
    sensor_indices = [i for i, name in enumerate(header) if i != time_index and name not in skip]
    rows, timestamps = [], [] if time_index is not None else None
    for number, record in enumerate(table[1:], start=2):
        if len(record) != len(header):
            raise BadRequest(f"CSV line {number} has {len(record)} fields; the header has {len(header)}")
        rows.append([_number(record[i], number, header[i]) for i in sensor_indices])
        if time_index is not None:
            timestamps.append(record[time_index].strip())
    return [header[i] for i in sensor_indices], rows, timestamps


def sniff_delimiter(header: str) -> str:
    counts = {delimiter: header.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _number(text: str, line: int, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise BadRequest(f"CSV line {line}, column {column!r}: {text!r} is not a number") from None

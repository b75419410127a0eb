"""Scheduled scoring of machine data: what Lookout for Equipment's inference scheduler did.

A plant's data pipeline drops CSV files (a header row, a timestamp column, one column per sensor)
under `sensors/<asset>/incoming/`. On a schedule (EventBridge Scheduler on AWS; a watcher thread
in the local stack) this handler scores every waiting file through the asset's sensor endpoint,
in time order, and writes what it found:

- `sensors/<asset>/results/<file>.json`: the readings, every row's score and the events;
- the file itself moves to `processed/` (or to `failed/`, beside `<file>.error.json` saying why,
  when its content is wrong: nothing is lost, nothing is retried in vain);
- one inspection-log record per file, so the history and the alarms see machines as well.

Files are scored as one continuous series: the last rows of the previous file (`state.json`) give
the first rows of the next their context. An endpoint that is down leaves the file where it is,
to be scored on the next run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from datetime import datetime, timezone

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

import endpoint_client
import inspection_log
import object_store
from api_core import ApiError, count_verdict, logger
from endpoint_client import default_models, invoke

#: Each run's counts, summed over assets, in CloudWatch (embedded metric format): the feed's alarms watch them.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "IVADAS"), service="ivadas-sensor-feed")
FILE_METRICS = {"scored": "FilesScored", "failed": "FilesFailed", "waiting": "FilesWaiting"}

#: Rows per endpoint call: well inside the endpoint's window limit and Lambda's 6 MB payload.
CHUNK_ROWS = 5000
#: Stop taking new files when less than this is left of the Lambda's time; the rest wait for the next run.
SAFETY_MS = 30_000
TIMESTAMP_COLUMNS = ("timestamp", "datetime", "time", "date")
NON_SENSOR_COLUMNS = ("anomaly", "label", "is_anomaly", "changepoint")
OUTPUTS = ["scores", "events", "contributions"]


class FileRejected(Exception):
    """The file's content cannot be scored as it is (moved to failed/ with this reason)."""


@metrics.log_metrics
def handler(event: dict, context) -> dict:
    endpoint_client.start_budget(context)  # endpoint calls end before this run does
    store = object_store.from_environment()
    if store is None:
        raise RuntimeError("SENSOR_STORE is not set: the sensor feed has nowhere to read from")
    kind = (event or {}).get("model") or default_models().get("sensors")
    assets = (event or {}).get("assets") or store.folders("sensors")
    summary = {}
    try:
        for asset in assets:
            summary[asset] = score_waiting_files(store, asset, kind, context)
    finally:  # what was done is counted even when a later asset fails the run
        count_files(summary)
    logger.info("sensor feed run", extra={"summary": summary})
    return {"model": kind, "assets": summary}


def count_files(summary: dict) -> None:
    for field, name in FILE_METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=sum(done[field] for done in summary.values()))


def remaining_ms(context) -> float:
    return context.get_remaining_time_in_millis() if context is not None else float("inf")


def score_waiting_files(store, asset: str, kind: str, context=None) -> dict:
    done = {"scored": 0, "failed": 0, "waiting": 0}
    waiting = [key for key in store.list(f"sensors/{asset}/incoming/") if key.lower().endswith(".csv")]
    for index, key in enumerate(waiting):
        if remaining_ms(context) < SAFETY_MS:
            done["waiting"] = len(waiting) - index
            break
        name = key.rsplit("/", 1)[-1]
        try:
            result = score_file(store, asset, kind, store.get(key), key)
        except FileRejected as exc:
            store.put(f"sensors/{asset}/failed/{name}.error.json", json.dumps({"file": key, "reason": str(exc)}).encode())
            store.move(key, f"sensors/{asset}/failed/{name}")
            logger.warning("sensor file rejected", extra={"file": key, "reason": str(exc)})
            done["failed"] += 1
            continue
        except ApiError as exc:  # the endpoint is down or busy: the file waits for the next run
            logger.warning("sensor file left for the next run", extra={"file": key, "status": exc.status, "reason": exc.message})
            done["waiting"] = len(waiting) - index
            break
        store.put(f"sensors/{asset}/results/{result['scored_at']}-{name}.json", json.dumps(result).encode())
        store.move(key, f"sensors/{asset}/processed/{name}")
        record_inspection(result)
        done["scored"] += 1
    return done


def read_csv(data: bytes) -> tuple[list[str], list[str], list[list[float]]]:
    """(sensor names, timestamps, rows) of a sensor file; the feed needs a timestamp column."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileRejected("the file is not UTF-8 text") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise FileRejected("the file needs a header row and at least one row of readings")
    counts = {d: lines[0].count(d) for d in (",", ";", "\t")}
    table = list(csv.reader(lines, delimiter=max(counts, key=counts.get)))
    header = [name.strip() for name in table[0]]
    lowered = [name.lower() for name in header]
    time_index = next((lowered.index(n) for n in TIMESTAMP_COLUMNS if n in lowered), None)
    if time_index is None:
        raise FileRejected(f"no timestamp column ({', '.join(TIMESTAMP_COLUMNS)}) in the header {header}")
    sensor_indices = [i for i, name in enumerate(lowered) if i != time_index and name not in NON_SENSOR_COLUMNS]
    timestamps, rows = [], []
    for line, record in enumerate(table[1:], start=2):
        if len(record) != len(header):
            raise FileRejected(f"line {line} has {len(record)} fields; the header has {len(header)}")
        try:
            rows.append([float(record[i]) for i in sensor_indices])
        except ValueError:
            raise FileRejected(f"line {line} holds a reading that is not a number") from None
        timestamps.append(record[time_index].strip())
    return [header[i] for i in sensor_indices], timestamps, rows


def epoch(text: str) -> float:
    """Epoch seconds of a timestamp: ISO 8601 (a time without a zone is UTC), or epoch seconds."""
    number = _number(text)
    if number is not None:
        return number
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FileRejected(f"timestamp {text!r} is neither ISO 8601 nor epoch seconds") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        raise FileRejected(f"timestamp {text!r} is not a time")
    return value


def wire_timestamp(text: str):
    """A timestamp as the endpoint takes it: epoch seconds as a number, ISO 8601 as text."""
    number = _number(text)
    return text if number is None else number


def score_file(store, asset: str, kind: str, data: bytes, key: str) -> dict:
    sensors, timestamps, rows = read_csv(data)
    times = [epoch(t) for t in timestamps]
    state = load_state(store, asset)
    context_rows = min_rows(kind, asset) - 1
    tail = state if state and state["sensors"] == sensors and state["times"] and state["times"][-1] < times[0] else None
    prefix_rows = tail["rows"][-context_rows:] if tail and context_rows else []
    prefix_stamps = tail["timestamps"][-len(prefix_rows):] if prefix_rows else []
    series_rows, series_stamps = prefix_rows + rows, prefix_stamps + timestamps
    scores, events, top, model, threshold = [None] * len(rows), [], None, None, 0.5
    for start in range(len(prefix_rows), len(series_rows), CHUNK_ROWS):
        first = max(0, start - context_rows)
        chunk_rows, chunk_stamps = series_rows[first:start + CHUNK_ROWS], series_stamps[first:start + CHUNK_ROWS]
        if len(chunk_rows) < context_rows + 1:
            break  # too few rows yet to score anything: they become the next file's context
        answer = call_endpoint(kind, asset, sensors, chunk_rows, chunk_stamps, feed_request_id(key))
        model, threshold = answer["model"], answer["threshold"]
        offset = start - first  # rows of the chunk that are context, not new
        new_scores = answer["scores"][offset:]
        scores[start - len(prefix_rows):start - len(prefix_rows) + len(new_scores)] = new_scores
        # events that end in the context belong to the previous file; one that starts there or on the
        # first new row may be the previous file's event running on
        events += [{**e, "continues": e["start_row"] <= offset} for e in answer.get("events", []) if e["end_row"] >= offset]
        if top is None or answer["anomaly_score"] > top["anomaly_score"]:
            top = answer
    save_state(store, asset, sensors, series_stamps, series_rows, [epoch(t) for t in series_stamps[-max(context_rows, 1):]],
               context_rows)
    return file_result(asset, key, sensors, timestamps, rows, scores, events, top, model, threshold)


def feed_request_id(source: str) -> str:
    """A scored file's id in the inspection log, and in its endpoint calls' InferenceId."""
    return "feed-" + hashlib.sha256(source.encode()).hexdigest()[:16]


def call_endpoint(kind: str, asset: str, sensors, rows, timestamps, request_id: str | None = None) -> dict:
    try:
        return invoke(kind, {"class_name": asset, "window": rows, "sensors": sensors,
                             "timestamps": [wire_timestamp(t) for t in timestamps], "outputs": OUTPUTS},
                      request_id=request_id)
    except ApiError as exc:
        if 400 <= exc.status < 500:  # the model refuses this content (unknown asset or sensors, bad times)
            raise FileRejected(exc.message) from None
        raise


_min_rows: dict[tuple[str, str], int] = {}


def min_rows(kind: str, asset: str) -> int:
    """Fewest rows the asset's model scores (its context): asked of the endpoint once per process."""
    if (kind, asset) not in _min_rows:
        described = invoke(kind, {"describe": True}, strict=False)
        entry = described.get("classes", {}).get(asset)
        if entry is None:
            raise FileRejected(f"no {kind} model serves asset {asset!r}; it serves {sorted(described.get('classes', {}))}")
        _min_rows[(kind, asset)] = int(entry.get("min_rows", 1))
    return _min_rows[(kind, asset)]


def load_state(store, asset: str) -> dict | None:
    key = f"sensors/{asset}/state.json"
    return json.loads(store.get(key)) if store.exists(key) else None


def save_state(store, asset: str, sensors, timestamps, rows, times, context_rows: int) -> None:
    keep = max(context_rows, 1)
    store.put(f"sensors/{asset}/state.json", json.dumps({"sensors": sensors, "timestamps": timestamps[-keep:],
                                                          "rows": rows[-keep:], "times": times[-keep:]}).encode())


def file_result(asset, key, sensors, timestamps, rows, scores, events, top, model, threshold) -> dict:
    scored_at = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    finite = [s for s in scores if s is not None]
    peak = max(finite) if finite else None
    return {
        "asset": asset, "source": key, "scored_at": scored_at, "model": model, "threshold": threshold,
        "sensors": sensors, "timestamps": timestamps, "values": rows, "scores": scores,
        "events": [feed_event(e) for e in events],
        "anomaly_score": peak, "raw_score": top["raw_score"] if top else None,
        "is_anomaly": bool(peak is not None and peak >= threshold),
        "contributions": (top or {}).get("contributions", [])[:3],
    }


def feed_event(event: dict) -> dict:
    """An endpoint's event as the feed keeps it: times, not rows of one call's window (`continues`: it
    starts where the file does, so it may be the last file's ongoing event running on)."""
    kept = {k: v for k, v in event.items() if k not in ("start_row", "end_row", "rows")}
    return {**kept, "start_s": epoch(event["start"]), "end_s": epoch(event["end"])}


def window_statistics(sensors: list[str], rows: list[list[float]]) -> dict:
    """Each sensor's mean, spread and range over a file's finite readings (inference/input_statistics.py
    computes the same for a window on the endpoint; the Lambda has no numpy)."""
    found = {}
    for column, name in enumerate(sensors):
        readings = [row[column] for row in rows if math.isfinite(row[column])]
        if readings:
            mean = sum(readings) / len(readings)
            spread = math.sqrt(sum((value - mean) ** 2 for value in readings) / len(readings))
            found[name] = {"mean": round(mean, 6), "std": round(spread, 6), "min": round(min(readings), 6),
                           "max": round(max(readings), 6)}
    return found


def record_inspection(result: dict) -> None:
    if result["anomaly_score"] is None:
        return  # nothing scored yet (the file only filled the context)
    request_id = feed_request_id(result["source"])
    verdict = {"class_name": result["asset"], "model": result["model"], "anomaly_score": result["anomaly_score"],
               "raw_score": result["raw_score"], "threshold": result["threshold"], "is_anomaly": result["is_anomaly"],
               "rows": len(result["values"]), "peak_at": _peak_at(result), "events": result["events"],
               "contributions": result["contributions"],
               # what drift monitoring compares with training, as the endpoints give it for a window
               "input_statistics": {"sensors": window_statistics(result["sensors"], result["values"])}}
    count_verdict(result["asset"], result["model"]["kind"], result["is_anomaly"])
    try:
        inspection_log.from_environment().record(inspection_log.inspection_record(verdict, request_id))
    except Exception:  # the scores are written; a missing log entry is logged, not fatal
        logger.exception("sensor inspection could not be recorded")


def _peak_at(result: dict):
    scores = [(s, i) for i, s in enumerate(result["scores"]) if s is not None]
    return result["timestamps"][max(scores)[1]] if scores else None


def run_forever(interval_s: float, stop, context_factory=None) -> None:
    """The local stack's scheduler: the handler every `interval_s` seconds until `stop` is set."""
    while not stop.is_set():
        try:
            handler({}, context_factory() if context_factory else None)
        except Exception:
            logger.exception("sensor feed run failed")
        stop.wait(interval_s)


if __name__ == "__main__":  # `python sensor_feed.py` in the local stack
    import threading

    run_forever(float(os.environ.get("SENSOR_FEED_INTERVAL_S", "5")), threading.Event())

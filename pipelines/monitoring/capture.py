"""Requests the endpoints' data capture recorded, as verdicts the monitor reads beside the inspection log.

The API records every verdict it gets in the inspection log; a station or script that calls an
endpoint directly (InvokeEndpoint, not POST /predict) leaves a trace only in SageMaker's data capture,
which the deploy Lambda turns on for every endpoint (`lambda/deploy/endpoints.py`: a sample of
`InitialSamplingPercentage` % of the requests, input and output, under
`data-capture/<kind>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl` of the artifacts bucket). Each line:

    {"captureData": {"endpointInput":  {"observedContentType", "mode": "INPUT",  "data", "encoding"},
                     "endpointOutput": {"observedContentType", "mode": "OUTPUT", "data", "encoding"}},
     "eventMetadata": {"eventId", "inferenceId"?, "inferenceTime"}, "eventVersion": "0"}

`encoding` is JSON or CSV (the data as text, for the content types the capture config lists) or
BASE64 (anything else: a raw image). The output is the endpoint's answer: one verdict, a batch's
`predictions`, a `describe` summary or an error; each verdict becomes a monitoring record with the
fields of `records`. Its input statistics are those the endpoint measured and answered
(`inference.input_statistics`, on the image as the class decodes it); an answer without them has
them computed here from the captured input with the same functions.

Counted once: the API passes `InferenceId` = `API_INFERENCE_PREFIX` + its request id on every
endpoint call (`lambda/predict/endpoint_client.py`), so a captured request with such an id went
through the API, which logged its verdict (one per single request, one per batch item, one per
sensor-feed file, which spans several calls) or made it for itself (a `describe`): it is skipped.
Every other captured verdict is direct traffic and joins the log's. Capture is a sample, so direct
traffic is represented at the sampling rate; its anomaly rate and drift are unbiased, its count is not.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

#: What the API puts before its request id in InvokeEndpoint's InferenceId (endpoint_client.py).
API_INFERENCE_PREFIX = "ivadas-api:"
#: Where the deploy Lambda points every endpoint's data capture, in the artifacts bucket.
CAPTURE_PREFIX = "data-capture"
#: Folders between the capture root and the hours: kind (the deploy Lambda's), endpoint, variant (SageMaker's).
LEVELS = 3
#: A file of an hour's folder may hold requests from the end of the hour before.
EARLY_HOURS = 1
DETAIL_KEYS = ("rows", "scored_rows", "peak_at", "input_statistics")


@dataclass
class CaptureRead:
    records: list[dict] = field(default_factory=list)
    #: files read, lines read, and what became of them: verdicts, api (skipped: the log has them),
    #: not_verdicts (describe, errors), unreadable (a line or payload that cannot be parsed)
    counts: Counter = field(default_factory=Counter)


# ------------------------------------------------------------------------------------- sources

class FolderCapture:
    """Capture files under a folder laid out like the bucket's prefix (the local stack's store)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def texts(self, hours: list[str]):
        for hour in hours:
            for path in sorted(self.root.glob("/".join(["*"] * LEVELS + [hour, "*.jsonl"]))):
                yield str(path), path.read_text(encoding="utf-8")


class S3Capture:
    """Capture files under `s3://bucket/prefix`: the variant folders found level by level, then only
    the period's hour folders listed (a month of capture is many files; a day is a few)."""

    def __init__(self, bucket: str, prefix: str = CAPTURE_PREFIX, s3=None):
        import boto3

        self.bucket, self.prefix, self.s3 = bucket, prefix.strip("/"), s3 or boto3.client("s3")

    @classmethod
    def from_uri(cls, uri: str, s3=None) -> "S3Capture":
        if not uri.startswith("s3://"):
            raise ValueError(f"{uri!r} is not an s3:// location")
        bucket, _, prefix = uri[5:].partition("/")
        return cls(bucket, prefix, s3)

    def _folders(self, prefix: str) -> list[str]:
        found = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            found += [entry["Prefix"] for entry in page.get("CommonPrefixes", [])]
        return found

    def texts(self, hours: list[str]):
        folders = [f"{self.prefix}/" if self.prefix else ""]
        for _ in range(LEVELS):
            folders = [child for folder in folders for child in self._folders(folder)]
        for folder in folders:
            for hour in hours:
                for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{folder}{hour}/"):
                    for entry in page.get("Contents", []):
                        if entry["Key"].endswith(".jsonl"):
                            body = self.s3.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"].read()
                            yield entry["Key"], body.decode("utf-8")


def hour_folders(since: datetime, until: datetime) -> list[str]:
    """`yyyy/mm/dd/hh` of every hour from the one before `since` to the one holding `until` (UTC)."""
    hour = since.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=EARLY_HOURS)
    last = until.astimezone(timezone.utc)
    folders = []
    while hour <= last:
        folders.append(hour.strftime("%Y/%m/%d/%H"))
        hour += timedelta(hours=1)
    return folders


# ------------------------------------------------------------------------------------- reading

def read_capture(source, since: datetime, until: datetime) -> CaptureRead:
    """Direct traffic's verdicts captured in [since, until), oldest first."""
    read = CaptureRead()
    for _, text in source.texts(hour_folders(since, until)):
        read.counts["files"] += 1
        for line in filter(None, (line.strip() for line in text.splitlines())):
            read.counts["lines"] += 1
            try:
                event = json.loads(line)
                moment = inference_time(event)
            except (ValueError, KeyError, TypeError, AttributeError):
                read.counts["unreadable"] += 1
                continue
            if not since <= moment < until:
                continue
            outcome, found = records_of_event(event, moment)
            read.counts[outcome] += 1
            read.records += found
    read.counts["verdicts"] = len(read.records)
    read.records.sort(key=lambda record: record["timestamp"])
    return read


def inference_time(event: dict) -> datetime:
    moment = datetime.fromisoformat(event["eventMetadata"]["inferenceTime"].replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def payload(entry: dict | None) -> bytes | None:
    """A captured input or output as the bytes that were sent."""
    if not entry or entry.get("data") is None:
        return None
    data = entry["data"]
    if (entry.get("encoding") or "").upper() == "BASE64":
        return base64.b64decode(data, validate=True)
    return data.encode("utf-8")


def content_type(entry: dict | None) -> str:
    return ((entry or {}).get("observedContentType") or "").split(";")[0].strip().lower()


def records_of_event(event: dict, moment: datetime) -> tuple[str, list[dict]]:
    """(`verdicts` | `api` | `not_verdicts` | `unreadable`, the monitoring records of one captured request)."""
    metadata = event.get("eventMetadata") or {}
    if str(metadata.get("inferenceId") or "").startswith(API_INFERENCE_PREFIX):
        return "api", []
    captured = event.get("captureData") or {}
    try:
        answer = json.loads(payload(captured.get("endpointOutput")) or b"null")
    except (ValueError, binascii.Error):
        return "unreadable", []
    verdicts = answer.get("predictions") if isinstance(answer, dict) and "predictions" in answer else [answer]
    if not isinstance(verdicts, list):
        return "unreadable", []
    instances = [None] * len(verdicts)
    if any(_is_verdict(v) and not v.get("input_statistics") for v in verdicts):  # the input is read only when needed
        try:
            body = payload(captured.get("endpointInput"))
        except (ValueError, binascii.Error):
            body = None
        instances = _instances(body, content_type(captured.get("endpointInput")), len(verdicts))
    identity = metadata.get("inferenceId") or metadata.get("eventId") or moment.isoformat()
    records = []
    for index, (verdict, instance) in enumerate(zip(verdicts, instances)):
        if not _is_verdict(verdict):
            continue
        name = f"capture:{identity}" if len(verdicts) == 1 else f"capture:{identity}#{index}"
        try:
            records.append(_record(verdict, instance, name, moment))
        except (TypeError, ValueError, AttributeError):  # an answer of another shape than the endpoints give
            return "unreadable", []
    return ("verdicts" if records else "not_verdicts"), records


def _is_verdict(answer) -> bool:
    return (isinstance(answer, dict) and "error" not in answer and isinstance(answer.get("model"), dict)
            and all(key in answer for key in ("class_name", "raw_score", "anomaly_score", "is_anomaly")))


def _instances(body: bytes | None, kind: str, count: int) -> list:
    """Each verdict's input: (content type, JSON instance or raw bytes), None where it cannot be told."""
    if body is None:
        return [None] * count
    if kind == "application/json":
        try:
            request = json.loads(body)
        except ValueError:
            return [None] * count
        if isinstance(request, dict) and isinstance(request.get("instances"), list):
            return [("application/json", item) for item in request["instances"]] + [None] * max(count - len(request["instances"]), 0)
        return [("application/json", request)] + [None] * (count - 1)
    return [(kind, body)] + [None] * (count - 1)


def _record(verdict: dict, instance, request_id: str, moment: datetime) -> dict:
    detail = {key: verdict[key] for key in DETAIL_KEYS if key in verdict}
    if not detail.get("input_statistics") and instance is not None:
        statistics = input_statistics(*instance)
        if statistics:
            detail["input_statistics"] = statistics
    return {
        "request_id": request_id,
        "timestamp": moment.astimezone(timezone.utc).isoformat(timespec="milliseconds"),
        "class_name": verdict["class_name"], "model_kind": verdict["model"].get("kind"),
        "model_version": verdict["model"].get("version"),
        "anomaly_score": float(verdict["anomaly_score"]), "raw_score": float(verdict["raw_score"]),
        "threshold": float(verdict["threshold"]) if verdict.get("threshold") is not None else None,
        "is_anomaly": bool(verdict["is_anomaly"]), "detail": detail, "verified_label": None, "source": "data_capture",
    }


# ----------------------------------------------------------------------------- input statistics

def input_statistics(kind: str, instance) -> dict | None:
    """What `inference.input_statistics` gives for an input the endpoint took: a JSON instance
    (`image_base64` or `window` + `sensors`), raw image bytes or a CSV window. None when unreadable."""
    try:
        if kind == "application/json":
            if not isinstance(instance, dict):
                return None
            if isinstance(instance.get("image_base64"), str):
                return _image_statistics(_base64_image(instance["image_base64"]))
            if isinstance(instance.get("window"), list) and isinstance(instance.get("sensors"), list):
                return _window_statistics(instance["window"], instance["sensors"])
            return None
        if kind in ("text/csv", "application/csv"):
            from inference.sensors.sensor_model import read_csv_window

            sensors, rows, _ = read_csv_window(instance)
            return _window_statistics(rows, sensors)
        return _image_statistics(instance)
    except Exception:  # noqa: BLE001 - an input the endpoint refused or that cannot be decoded here
        return None


def _base64_image(text: str) -> bytes:
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    return base64.b64decode(text, validate=True)


def _image_statistics(data: bytes) -> dict:
    """Decoded as the endpoint decodes it (the class's white level aside: a 16-bit image without sBIT
    is scaled to the container's range here, since the bundle is not at hand)."""
    from inference.input_statistics import image_statistics
    from inference.vision.imageio import decode_image

    return image_statistics(decode_image(data))


def _window_statistics(rows, sensors) -> dict:
    from inference.input_statistics import window_statistics

    values = np.array([[np.nan if value is None else float(value) for value in row] for row in rows], dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(sensors):
        raise ValueError("the window's rows do not match its sensors")
    return {"sensors": window_statistics(values, [str(name) for name in sensors])}


def merge(logged: list[dict], captured: list[dict]) -> list[dict]:
    """The log's verdicts and the captured direct ones (API calls are already left out), oldest first."""
    return sorted(logged + captured, key=lambda record: record["timestamp"])


def read_source(location: str | Path | None, since: datetime, until: datetime, s3=None) -> CaptureRead:
    """`s3://bucket/prefix`, a folder, or nothing (no capture configured, or none written yet)."""
    if not location:
        return CaptureRead()
    if str(location).startswith("s3://"):
        return read_capture(S3Capture.from_uri(str(location), s3), since, until)
    if not Path(location).is_dir():
        return CaptureRead()
    return read_capture(FolderCapture(location), since, until)


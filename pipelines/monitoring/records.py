"""Verdicts of a period, read from the inspection log (the SQLite file of the local stack, or the
DynamoDB table on AWS) as plain dicts: the fields of `lambda/predict/inspection_log.py`, `detail`
parsed, and `verified_label` ("anomaly" / "normal") where a person confirmed or corrected the verdict
(POST /feedback leaves a marker `datasets/feedback/inspection/<request_id>.json` with the truth)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

FIELDS = ("request_id", "timestamp", "class_name", "model_kind", "model_version", "anomaly_score", "raw_score",
          "threshold", "is_anomaly", "detail", "verified_label")


def parse_time(text: str) -> datetime:
    """ISO-8601 (`2026-12-01`, `2026-12-01T08:00`, with or without zone: UTC assumed) or a span back
    from now (`24h`, `7d`, `90m`)."""
    text = text.strip()
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.now(timezone.utc) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use ISO-8601 (2026-12-01T08:00) or a span back from now (24h, 7d)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _plain(record: dict) -> dict:
    detail = record.get("detail")
    if isinstance(detail, str):
        detail = json.loads(detail) if detail else None
    plain = {key: record.get(key) for key in FIELDS}
    plain["detail"] = detail or {}
    plain["is_anomaly"] = bool(plain["is_anomaly"])
    for key in ("anomaly_score", "raw_score", "threshold"):
        plain[key] = float(plain[key]) if plain[key] is not None else None
    return plain


def read_sqlite(database: str | Path, since: datetime, until: datetime) -> list[dict]:
    database = Path(database)
    if not database.is_file():
        raise FileNotFoundError(f"no inspection log at {database}; the local stack writes it (`ivadas up`)")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
        db.row_factory = sqlite3.Row
        columns = {row[1] for row in db.execute("PRAGMA table_info(inspections)")}
        rows = db.execute("SELECT * FROM inspections WHERE timestamp >= ? AND timestamp < ? ORDER BY timestamp",
                          [_iso(since), _iso(until)]).fetchall()
    return [_plain({**dict(row), **({} if "verified_label" in columns else {"verified_label": None})}) for row in rows]


def read_dynamodb(table_name: str, since: datetime, until: datetime, dynamodb=None) -> list[dict]:
    """Day partitions (`day`) from `since` to `until`, sort key `timestamp#request_id`."""
    import boto3
    from boto3.dynamodb.conditions import Key

    table = (dynamodb or boto3.resource("dynamodb")).Table(table_name)
    found, day = [], since.date()
    while day <= until.date():
        kwargs = {"KeyConditionExpression": Key("day").eq(day.isoformat()) & Key("sk").between(_iso(since), _iso(until))}
        while True:
            page = table.query(**kwargs)
            found += [_plain(json.loads(json.dumps(item, default=_number))) for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        day += timedelta(days=1)
    return sorted(found, key=lambda r: r["timestamp"])


def _number(value):
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "+00:00")


#: Where POST /feedback marks an inspection it verified, and the truth it recorded there.
FEEDBACK_PREFIX = "datasets/feedback/inspection/"
TRUTH_LABELS = {"anomalous": "anomaly", "good": "normal"}


def attach_feedback(records: list[dict], markers: dict[str, dict]) -> list[dict]:
    """`verified_label` from the feedback markers (request id → marker) where the record has none."""
    for record in records:
        marker = markers.get(record["request_id"])
        if marker and not record.get("verified_label"):
            record["verified_label"] = TRUTH_LABELS.get(marker.get("truth"))
    return records


def folder_feedback(store: str | Path) -> dict[str, dict]:
    """The local stack's markers, under the store (the API's `SENSOR_STORE` folder)."""
    folder = Path(store) / FEEDBACK_PREFIX
    found = {}
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            found[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
    return found


def s3_feedback(bucket: str, s3=None) -> dict[str, dict]:
    import boto3

    s3 = s3 or boto3.client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=FEEDBACK_PREFIX):
        for item in page.get("Contents", []):
            name = item["Key"][len(FEEDBACK_PREFIX):]
            if name.endswith(".json") and "/" not in name:
                found[name[:-5]] = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    return found

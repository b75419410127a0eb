"""Every inspection, recorded: DynamoDB + S3 on AWS, SQLite + a folder locally, one interface.

A record holds time, class (or asset), model kind and version, scores, verdict and request id, and
in `detail` what the kind adds that an engineer looks for later (a sensor window's rows, its peak,
its events and their top sensors). The image itself is kept for anomalous results when
`store_anomalous_images` is on, and for a sample of `keep_normal_percent` % of normal ones: a
person can only report a missed defect on a normal verdict whose image is still there, and a
sample shows the misses at a fraction of the storage.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

FIELDS = ("request_id", "timestamp", "class_name", "model_kind", "model_version", "anomaly_score", "raw_score",
          "threshold", "is_anomaly", "image_key", "detail")
#: What a sensor verdict adds to its record (the full per-row scores stay out: they are in the answer).
DETAIL_KEYS = ("rows", "scored_rows", "peak_at", "events", "input_statistics")
TOP_CONTRIBUTIONS = 3
RETENTION_DAYS = 90


def inspection_record(result: dict, request_id: str) -> dict:
    """The log entry of a verdict; a NaN or infinite number in it is a ValueError, never a stored `Infinity`
    that the history and monitoring would later serve."""
    scores = {key: float(result[key]) for key in ("anomaly_score", "raw_score", "threshold")}
    if not all(math.isfinite(value) for value in scores.values()):
        raise ValueError(f"a verdict with a non-finite score is not recorded: {scores}")
    return {
        "request_id": request_id,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "class_name": result["class_name"],
        "model_kind": result["model"]["kind"],
        "model_version": result["model"]["version"],
        **scores,
        "is_anomaly": bool(result["is_anomaly"]),
        "image_key": None,
        "detail": json.dumps(_detail(result), allow_nan=False) if _detail(result) else None,
    }


def _detail(result: dict) -> dict:
    detail = {key: result[key] for key in DETAIL_KEYS if key in result}
    if result.get("contributions"):
        detail["contributions"] = result["contributions"][:TOP_CONTRIBUTIONS]
    return detail


def _plain_detail(record: dict) -> dict:
    """The record as the API returns it: `detail` as an object, not the text it is stored as."""
    text = record.get("detail")
    return {**record, "detail": json.loads(text) if text else None}


def _matches(record: dict, class_name: str | None, verdict: str | None) -> bool:
    if class_name and record["class_name"] != class_name:
        return False
    if verdict == "anomaly" and not record["is_anomaly"]:
        return False
    if verdict == "normal" and record["is_anomaly"]:
        return False
    return True


def keeps_image(record: dict, store_anomalous: bool, keep_normal_percent: float) -> bool:
    """Whether an inspection's image is kept: every anomalous one (when on), and normal ones whose
    request id falls in the sample (a hash, so the same request is always in or out of it)."""
    if record["is_anomaly"]:
        return store_anomalous
    bucket = int.from_bytes(hashlib.sha256(str(record["request_id"]).encode()).digest()[:4], "big") % 10_000
    return bucket < keep_normal_percent * 100


class SqliteInspectionLog:
    def __init__(self, database: str | Path, image_dir: str | Path | None = None, store_anomalous_images: bool = False,
                 keep_normal_percent: float = 0.0):
        self.database = Path(database)
        self.database.parent.mkdir(parents=True, exist_ok=True)
        self.image_dir = Path(image_dir) if image_dir else self.database.parent / "images"
        self.store_images = store_anomalous_images
        self.keep_normal_percent = keep_normal_percent
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS inspections (request_id TEXT PRIMARY KEY, timestamp TEXT, class_name TEXT, "
                       "model_kind TEXT, model_version TEXT, anomaly_score REAL, raw_score REAL, threshold REAL, "
                       "is_anomaly INTEGER, image_key TEXT, detail TEXT)")
            db.execute("CREATE INDEX IF NOT EXISTS by_time ON inspections (timestamp)")
            columns = {row[1] for row in db.execute("PRAGMA table_info(inspections)")}
            if "detail" not in columns:  # a log written before sensor verdicts had details
                db.execute("ALTER TABLE inspections ADD COLUMN detail TEXT")

    def _connect(self):
        return sqlite3.connect(self.database, timeout=10)

    def record(self, record: dict, image: bytes | None = None) -> dict:
        if image is not None and keeps_image(record, self.store_images, self.keep_normal_percent):
            self.image_dir.mkdir(parents=True, exist_ok=True)
            path = self.image_dir / f"{record['request_id']}.img"
            path.write_bytes(image)
            record = {**record, "image_key": str(path)}
        with self._lock, self._connect() as db:
            db.execute(f"INSERT OR REPLACE INTO inspections ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})",
                       [record[f] for f in FIELDS])
        return record

    def recent(self, class_name: str | None = None, verdict: str | None = None, limit: int = 50) -> list[dict]:
        query, params = "SELECT * FROM inspections WHERE 1=1", []
        if class_name:
            query, params = query + " AND class_name = ?", params + [class_name]
        if verdict in ("anomaly", "normal"):
            query, params = query + " AND is_anomaly = ?", params + [int(verdict == "anomaly")]
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(query + " ORDER BY timestamp DESC LIMIT ?", params + [limit]).fetchall()
        return [_plain_detail({**dict(row), "is_anomaly": bool(row["is_anomaly"])}) for row in rows]

    def get(self, request_id: str, timestamp: str | None = None) -> dict | None:
        """One inspection by its request id (None when the history has no such inspection)."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM inspections WHERE request_id = ?", [request_id]).fetchone()
        return _plain_detail({**dict(row), "is_anomaly": bool(row["is_anomaly"])}) if row else None


class DynamoInspectionLog:
    """Table keyed by day (`day`) and `sk` = timestamp#request_id; images in S3; records expire.

    Images are encrypted with `kms_key` (the inspection key, `INSPECTION_KMS_KEY`), named on every
    write: the bucket's default key is the project's, and its policy refuses an image under
    `inspections/` written with any key but the inspection key."""

    def __init__(self, table: str, bucket: str | None = None, store_anomalous_images: bool = False, dynamodb=None, s3=None,
                 keep_normal_percent: float = 0.0, kms_key: str | None = None):
        import boto3

        self.table = (dynamodb or boto3.resource("dynamodb")).Table(table)
        self.bucket = bucket
        self.kms_key = kms_key
        self.s3 = s3 or (boto3.client("s3") if bucket else None)
        self.store_images = store_anomalous_images and bool(bucket)
        self.keep_normal_percent = keep_normal_percent if bucket else 0.0

    def record(self, record: dict, image: bytes | None = None) -> dict:
        day = record["timestamp"][:10]
        if image is not None and keeps_image(record, self.store_images, self.keep_normal_percent):
            key = f"inspections/{day}/{record['request_id']}.img"
            key_id = {"SSEKMSKeyId": self.kms_key} if self.kms_key else {}
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=image, ServerSideEncryption="aws:kms", **key_id)
            record = {**record, "image_key": f"s3://{self.bucket}/{key}"}
        item = {k: v for k, v in record.items() if v is not None}
        item = json.loads(json.dumps(item, allow_nan=False), parse_float=Decimal)
        item.update(day=day, sk=f"{record['timestamp']}#{record['request_id']}",
                    expires_at=int(time.time()) + RETENTION_DAYS * 86400)
        self.table.put_item(Item=item)
        return record

    def recent(self, class_name: str | None = None, verdict: str | None = None, limit: int = 50, days: int = 7) -> list[dict]:
        from boto3.dynamodb.conditions import Key

        found = []
        today = datetime.now(timezone.utc).date()
        for offset in range(days):
            day = (today - timedelta(days=offset)).isoformat()
            kwargs = {"KeyConditionExpression": Key("day").eq(day), "ScanIndexForward": False}
            while len(found) < limit:
                page = self.table.query(**kwargs)
                found += [self._plain(i) for i in page["Items"] if _matches(self._plain(i), class_name, verdict)]
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            if len(found) >= limit:
                break
        return found[:limit]

    def get(self, request_id: str, timestamp: str | None = None, days: int = 7) -> dict | None:
        """One inspection by request id: by its key with the timestamp the history lists, else looked
        for among the last `days` days (a verdict just given, marked from the inspect page)."""
        if timestamp:
            item = self.table.get_item(Key={"day": timestamp[:10], "sk": f"{timestamp}#{request_id}"}).get("Item")
            return self._plain(item) if item else None
        from boto3.dynamodb.conditions import Attr, Key

        today = datetime.now(timezone.utc).date()
        for offset in range(days):
            kwargs = {"KeyConditionExpression": Key("day").eq((today - timedelta(days=offset)).isoformat()),
                      "FilterExpression": Attr("request_id").eq(request_id)}
            while True:
                page = self.table.query(**kwargs)
                if page["Items"]:
                    return self._plain(page["Items"][0])
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return None

    @staticmethod
    def _plain(item: dict) -> dict:
        record = {f: item.get(f) for f in FIELDS}
        for key in ("anomaly_score", "raw_score", "threshold"):
            record[key] = float(record[key]) if record[key] is not None else None
        record["is_anomaly"] = bool(record["is_anomaly"])
        return _plain_detail(record)


def from_environment():
    """The log this deployment uses: `INSPECTION_LOG=dynamodb|sqlite` and its settings."""
    store_images = os.environ.get("STORE_ANOMALOUS_IMAGES", "false").lower() == "true"
    keep_normal = float(os.environ.get("KEEP_NORMAL_IMAGES_PERCENT", "0"))
    if os.environ.get("INSPECTION_LOG", "sqlite") == "dynamodb":
        return DynamoInspectionLog(os.environ["INSPECTION_TABLE"], os.environ.get("INSPECTION_BUCKET"), store_images,
                                   keep_normal_percent=keep_normal, kms_key=os.environ.get("INSPECTION_KMS_KEY") or None)
    database = os.environ.get("INSPECTION_DB", str(Path(os.environ.get("TMPDIR", "/tmp")) / "ivadas-inspections.sqlite"))
    return SqliteInspectionLog(database, os.environ.get("INSPECTION_IMAGE_DIR"), store_images, keep_normal)

"""GET /monitoring: the latest monitoring summary (drift, anomaly rate, confirmed quality per class and
model version, and the alarms); GET /monitoring/report: the same as a self-contained HTML page.

The monitoring job writes both under `MONITORING_STORE` (`s3://<artifacts>/monitoring` on AWS, where
a SageMaker Processing job on a schedule writes them; the store's `monitoring/` folder locally, where
the local stack or `ivadas monitor` does) in `latest/`.
"""

from __future__ import annotations

import json
import os

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from api_core import ApiError

router = APIGatewayRouter()
SUMMARY_KEY, REPORT_KEY = "latest/summary.json", "latest/report.html"
_store = None


def monitoring_store():
    """`MONITORING_STORE`: `s3://bucket/prefix` or a folder (None when monitoring is not set up)."""
    global _store
    if _store is None:
        from object_store import FolderStore, S3Store

        location = os.environ.get("MONITORING_STORE", "")
        if not location:
            return None
        if location.startswith("s3://"):
            bucket, _, prefix = location[5:].partition("/")
            _store = S3Store(bucket, prefix)
        else:
            _store = FolderStore(location)
    return _store


def _read(key: str) -> bytes | None:
    store = monitoring_store()
    if store is None:
        raise ApiError(404, "monitoring_not_configured", "monitoring is not set up in this deployment")
    if not store.exists(key):
        return None
    return store.get(key)


@router.get("/monitoring")
def latest_summary():
    body = _read(SUMMARY_KEY)
    if body is None:
        return {"summary": None, "message": "no monitoring run yet: the scheduled job (or `ivadas monitor`) writes the first"}
    return {"summary": json.loads(body)}


@router.get("/monitoring/report")
def latest_report():
    """The page itself, or `{"html": ...}` for a caller that accepts only JSON (the UI, which signs its
    API calls and shows the page in a frame)."""
    body = _read(REPORT_KEY)
    if body is None:
        raise ApiError(404, "no_report", "no monitoring report yet: the scheduled job (or `ivadas monitor`) writes the first")
    headers = {key.lower(): value for key, value in (router.current_event.headers or {}).items()}
    if "application/json" in headers.get("accept", "") and "text/html" not in headers.get("accept", ""):
        return {"html": body.decode("utf-8")}
    return Response(200, content_types.TEXT_HTML, body.decode("utf-8"))


@router.post("/monitoring/run")
def request_run():
    """Ask for a monitoring pass now. Locally the stack's monitor picks the request up within a second;
    on AWS the Processing job runs on its schedule only (its console starts one early)."""
    location = os.environ.get("MONITORING_STORE", "")
    if not location:
        raise ApiError(404, "monitoring_not_configured", "monitoring is not set up in this deployment")
    if location.startswith("s3://"):
        raise ApiError(409, "scheduled_only", "on AWS the monitoring job runs on its schedule; start one early "
                                              "from the SageMaker console or wait for the next run")
    from pathlib import Path

    Path(location).mkdir(parents=True, exist_ok=True)
    (Path(location) / "run-requested").write_text("requested")
    return Response(202, content_types.APPLICATION_JSON, json.dumps({"status": "requested"}))

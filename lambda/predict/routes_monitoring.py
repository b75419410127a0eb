"""GET /monitoring: the latest monitoring summary (drift, anomaly rate, confirmed quality per class and
model version, and the alarms); GET /monitoring/report: the same as a self-contained HTML page.

The monitoring job writes both under `MONITORING_STORE` (`s3://<artifacts>/monitoring` on AWS, where
a SageMaker Processing job on a schedule writes them; the store's `monitoring/` folder locally, where
the local stack or `ivadas monitor` does) in `latest/`.

POST /monitoring/run starts a pass now: locally a marker the stack's monitor waits for; on AWS the
Processing job itself, from the very definition the schedule uses (an SSM parameter named by
`MONITORING_JOB_PARAMETER`: the job name prefix and the CreateProcessingJob request without its name,
written by infra/aws/constructs/drift_monitoring.py), under a name of its own.
"""

from __future__ import annotations

import json
import os
from datetime import datetime

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from botocore.exceptions import ClientError

import processing_jobs
from api_core import MAX_BODY_BYTES, ApiError, logger

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


def _configured_store():
    store = monitoring_store()
    if store is None:
        raise ApiError(404, "monitoring_not_configured", "monitoring is not set up in this deployment")
    return store


def _read(key: str) -> bytes | None:
    store = _configured_store()
    if not store.exists(key):
        return None
    return store.get(key)


@router.get("/monitoring")
def latest_summary():
    body = _read(SUMMARY_KEY)
    if body is None:
        return {"summary": None, "message": "no monitoring run yet: the scheduled job (or `ivadas monitor`) writes the first"}
    return {"summary": json.loads(body)}


#: How long a link to a report too large to answer with lasts.
REPORT_LINK_SECONDS = 300
REPORT_TYPE = "text/html; charset=utf-8"


@router.get("/monitoring/report")
def latest_report():
    """The page itself, or `{"html": ...}` for a caller that accepts only JSON (the UI, which signs its
    API calls and places the page in its own). A page too large for a Lambda answer (each class and
    model version adds its plots) comes as a link to the object instead, valid `REPORT_LINK_SECONDS`:
    `{"url", "expires_in", "bytes"}` for the UI, a redirect (303) for an HTTP client that asks for the
    page (the link carries its own signature: a client that follows it must not send the API's
    Authorization header along, which S3 refuses)."""
    store = _configured_store()
    size = store.size(REPORT_KEY)
    if size is None:
        raise ApiError(404, "no_report", "no monitoring report yet: the scheduled job (or `ivadas monitor`) writes the first")
    headers = {key.lower(): value for key, value in (router.current_event.headers or {}).items()}
    wants_json = "application/json" in headers.get("accept", "") and "text/html" not in headers.get("accept", "")
    linkable = hasattr(store, "download_url")  # S3; a folder is the local stack's, which answers any size
    if not linkable or size <= MAX_BODY_BYTES:
        html = store.get(REPORT_KEY).decode("utf-8")
        body = json.dumps({"html": html}) if wants_json else html
        if not linkable or _fits_a_lambda_answer(body):
            return Response(200, content_types.APPLICATION_JSON if wants_json else REPORT_TYPE, body)
    url = store.download_url(REPORT_KEY, REPORT_LINK_SECONDS, REPORT_TYPE)
    if wants_json:
        return {"url": url, "expires_in": REPORT_LINK_SECONDS, "bytes": size}
    return Response(303, content_types.TEXT_PLAIN, f"the report is {size} bytes: {url}", headers={"Location": url})


def _fits_a_lambda_answer(body: str) -> bool:
    """Whether `body` stays within Lambda's response limit once placed, as a JSON string, in the answer."""
    return len(json.dumps(body).encode("utf-8")) <= MAX_BODY_BYTES


@router.post("/monitoring/run")
def request_run():
    """Ask for a monitoring pass now. Locally the stack's monitor picks the request up within a second;
    on AWS a Processing job starts (it takes a few minutes to provision and run)."""
    location = os.environ.get("MONITORING_STORE", "")
    if not location:
        raise ApiError(404, "monitoring_not_configured", "monitoring is not set up in this deployment")
    if location.startswith("s3://"):
        name = start_processing_job()
        return Response(202, content_types.APPLICATION_JSON, json.dumps({"status": "started", "job_name": name}))
    from pathlib import Path

    Path(location).mkdir(parents=True, exist_ok=True)
    (Path(location) / "run-requested").write_text("requested")
    return Response(202, content_types.APPLICATION_JSON, json.dumps({"status": "requested"}))


WORDS = processing_jobs.JobWords(what="the monitoring job", refused="monitoring_job_refused", exists="monitoring_run_exists",
                                 limit_reached="monitoring_limit_reached")
_definition = None
#: A SageMaker client set from outside (the tests' botocore Stubber); None: the default one.
_sagemaker = None


def job_definition() -> dict:
    """`{"namePrefix", "request"}`, read once per container from the parameter the stack wrote."""
    global _definition
    if _definition is None:
        import boto3

        parameter = os.environ.get("MONITORING_JOB_PARAMETER", "")
        if not parameter:
            raise ApiError(409, "scheduled_only", "this deployment starts the monitoring job on its schedule only")
        try:
            value = boto3.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
        except ClientError as exc:
            raise ApiError(502, "monitoring_job_unavailable",
                           f"the monitoring job's definition could not be read ({_code(exc)})") from None
        _definition = json.loads(value)
    return _definition


def job_name(prefix: str, now: datetime | None = None) -> str:
    """`<prefix>now-<UTC time>-<random>`: the schedule's runs end in its execution ids instead."""
    return processing_jobs.timestamped_name(f"{prefix}now-", now)


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "") or "error"


def start_processing_job() -> str:
    import boto3

    definition = job_definition()
    name = processing_jobs.start(_sagemaker or boto3.client("sagemaker"), job_name(definition["namePrefix"]),
                                 definition["request"], WORDS)
    logger.info("monitoring job started", extra={"job_name": name})
    return name

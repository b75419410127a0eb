"""GET /monitoring, GET /monitoring/report and POST /monitoring/run through the predict Lambda's handler:
the latest summary and report from the monitoring store (a folder here, S3 on AWS), clear errors when
there is none, and a run request the local stack's monitor picks up."""

import json

import boto3
import pytest
from moto import mock_aws

from tests.serving.test_predict_lambda import Context, api_event

import predict_app  # noqa: E402  (lambda/predict is on sys.path through test_predict_lambda)
import routes_monitoring  # noqa: E402

SUMMARY = {"status": "alarm", "alarms": [{"class_name": "tiles", "type": "input_drift", "message": "drift on class tiles"}],
           "groups": [], "verdicts": 40}


def call(method, path, headers=None):
    event = api_event(method, path, {} if method == "POST" else None)
    event["headers"].update(headers or {})
    response = predict_app.handler(event, Context())
    headers = response.get("headers") or {k: v[0] for k, v in response.get("multiValueHeaders", {}).items()}
    return response["statusCode"], headers.get("Content-Type"), response["body"]


@pytest.fixture
def store(monkeypatch, tmp_path):
    monkeypatch.setenv("ACCESS_CONTROL", "open")
    monkeypatch.setenv("MONITORING_STORE", str(tmp_path / "monitoring"))
    monkeypatch.setattr(routes_monitoring, "_store", None)
    return tmp_path / "monitoring"


def test_before_any_run_the_summary_is_empty_and_the_report_a_clear_404(store):
    status, _, body = call("GET", "/monitoring")
    assert status == 200 and json.loads(body)["summary"] is None and "no monitoring run yet" in json.loads(body)["message"]
    status, _, body = call("GET", "/monitoring/report")
    assert status == 404 and json.loads(body)["error"]["code"] == "no_report"


def test_the_latest_summary_and_report_as_html_or_json(store):
    (store / "latest").mkdir(parents=True)
    (store / "latest" / "summary.json").write_text(json.dumps(SUMMARY))
    (store / "latest" / "report.html").write_text("<html><body>drift on class tiles</body></html>")
    status, _, body = call("GET", "/monitoring")
    assert status == 200 and json.loads(body)["summary"] == SUMMARY
    status, kind, body = call("GET", "/monitoring/report", {"Accept": "text/html,*/*"})
    assert status == 200 and kind.startswith("text/html") and "drift on class tiles" in body
    status, _, body = call("GET", "/monitoring/report", {"Accept": "application/json"})
    assert status == 200 and "drift on class tiles" in json.loads(body)["html"]


def test_a_run_request_leaves_the_marker_the_local_monitor_waits_for(store):
    status, _, body = call("POST", "/monitoring/run")
    assert status == 202 and json.loads(body) == {"status": "requested"}
    assert (store / "run-requested").is_file()


def test_without_monitoring_every_route_says_so(monkeypatch):
    monkeypatch.setenv("ACCESS_CONTROL", "open")
    monkeypatch.delenv("MONITORING_STORE", raising=False)
    monkeypatch.setattr(routes_monitoring, "_store", None)
    for method, path in (("GET", "/monitoring"), ("GET", "/monitoring/report"), ("POST", "/monitoring/run")):
        status, _, body = call(method, path)
        assert status == 404 and json.loads(body)["error"]["code"] == "monitoring_not_configured"


def test_on_aws_the_summary_comes_from_s3_and_a_run_waits_for_the_schedule(monkeypatch):
    monkeypatch.setenv("ACCESS_CONTROL", "open")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MONITORING_STORE", "s3://ivadas-artifacts/monitoring")
    monkeypatch.setattr(routes_monitoring, "_store", None)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="ivadas-artifacts")
        status, _, body = call("GET", "/monitoring")
        assert status == 200 and json.loads(body)["summary"] is None
        s3.put_object(Bucket="ivadas-artifacts", Key="monitoring/latest/summary.json", Body=json.dumps(SUMMARY))
        status, _, body = call("GET", "/monitoring")
        assert status == 200 and json.loads(body)["summary"]["status"] == "alarm"
        status, _, body = call("POST", "/monitoring/run")
        assert status == 409 and json.loads(body)["error"]["code"] == "scheduled_only"

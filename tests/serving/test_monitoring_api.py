"""GET /monitoring, GET /monitoring/report and POST /monitoring/run through the predict Lambda's handler:
the latest summary and report from the monitoring store (a folder here, S3 on AWS), clear errors when
there is none, and a run request the local stack's monitor picks up, or on AWS the monitoring
Processing job started from the definition the schedule uses."""

import json
import re
from datetime import datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from tests.serving.test_predict_lambda import Context, api_event

import predict_app  # noqa: E402  (lambda/predict is on sys.path through test_predict_lambda)
import routes_monitoring  # noqa: E402

SUMMARY = {"status": "alarm", "alarms": [{"class_name": "tiles", "type": "input_drift", "message": "drift on class tiles"}],
           "groups": [], "verdicts": 40}


def respond(method, path, headers=None) -> tuple[dict, dict]:
    """The handler's whole answer (as Lambda returns it) and its headers."""
    event = api_event(method, path, {} if method == "POST" else None)
    event["headers"].update(headers or {})
    response = predict_app.handler(event, Context())
    return response, response.get("headers") or {k: v[0] for k, v in response.get("multiValueHeaders", {}).items()}


def call(method, path, headers=None):
    response, headers = respond(method, path, headers)
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


@pytest.fixture
def s3_store(monkeypatch):
    monkeypatch.setenv("ACCESS_CONTROL", "open")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("MONITORING_STORE", "s3://ivadas-artifacts/monitoring")
    monkeypatch.setattr(routes_monitoring, "_store", None)
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(Bucket="ivadas-artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield s3


def test_on_aws_the_summary_comes_from_s3(s3_store):
    status, _, body = call("GET", "/monitoring")
    assert status == 200 and json.loads(body)["summary"] is None
    s3_store.put_object(Bucket="ivadas-artifacts", Key="monitoring/latest/summary.json", Body=json.dumps(SUMMARY))
    status, _, body = call("GET", "/monitoring")
    assert status == 200 and json.loads(body)["summary"]["status"] == "alarm"


def _report_of(megabytes: float) -> str:
    """A report page of about that size: plots embedded as base64, as the monitoring job writes them."""
    plot = "A" * 60_000
    count = int(megabytes * 1024 * 1024 / len(plot)) + 1
    return "<html><body>" + "".join(f'<img src="data:image/png;base64,{plot}" alt="rate_{i}">' for i in range(count)) + "</body></html>"


def test_a_report_too_large_for_a_lambda_answer_comes_as_a_short_lived_link(s3_store):
    from urllib.parse import parse_qs, urlparse

    page = _report_of(7)
    s3_store.put_object(Bucket="ivadas-artifacts", Key="monitoring/latest/report.html", Body=page.encode())
    response, _ = respond("GET", "/monitoring/report", {"Accept": "application/json"})
    assert response["statusCode"] == 200 and len(json.dumps(response)) < 6 * 1024 * 1024  # Lambda's limit
    answer = json.loads(response["body"])
    assert answer["expires_in"] == 300 and answer["bytes"] == len(page) and "html" not in answer
    link = urlparse(answer["url"])
    assert link.scheme == "https" and link.netloc == "ivadas-artifacts.s3.eu-west-1.amazonaws.com"
    assert link.path == "/monitoring/latest/report.html"
    query = parse_qs(link.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["300"]
    assert query["response-content-type"] == ["text/html; charset=utf-8"]
    assert boto3.client("s3", region_name="eu-west-1").get_object(  # the link names the object the report is
        Bucket=link.netloc.split(".")[0], Key=link.path[1:])["Body"].read() == page.encode()
    response, headers = respond("GET", "/monitoring/report", {"Accept": "text/html,*/*"})
    assert response["statusCode"] == 303 and str(len(page)) in response["body"]
    assert urlparse(headers["Location"]).path == "/monitoring/latest/report.html"


def test_a_report_that_fits_is_answered_whole_from_s3(s3_store):
    page = _report_of(4)
    s3_store.put_object(Bucket="ivadas-artifacts", Key="monitoring/latest/report.html", Body=page.encode())
    response, _ = respond("GET", "/monitoring/report", {"Accept": "application/json"})
    assert response["statusCode"] == 200 and json.loads(response["body"])["html"] == page
    assert len(json.dumps(response)) < 6 * 1024 * 1024


def test_a_report_under_the_limit_that_escaping_takes_over_it_comes_as_a_link(s3_store):
    """The limit counts the answer as Lambda sends it: a page of quotes and non-ASCII text grows when it
    is escaped into JSON (twice for the UI's {"html": ...})."""
    from api_core import MAX_BODY_BYTES

    line = '<p class="note">score → 0.93</p>\n'
    page = "<html><body>" + line * ((MAX_BODY_BYTES - 100_000) // len(line.encode())) + "</body></html>"
    assert len(page.encode()) < MAX_BODY_BYTES and len(json.dumps(json.dumps({"html": page}))) > MAX_BODY_BYTES
    s3_store.put_object(Bucket="ivadas-artifacts", Key="monitoring/latest/report.html", Body=page.encode())
    status, _, body = call("GET", "/monitoring/report", {"Accept": "application/json"})
    assert status == 200 and json.loads(body)["url"].startswith("https://ivadas-artifacts.s3.eu-west-1.amazonaws.com/")


def test_the_local_stack_answers_a_large_report_whole(store):
    (store / "latest").mkdir(parents=True)
    page = _report_of(7)
    (store / "latest" / "report.html").write_text(page)
    status, _, body = call("GET", "/monitoring/report", {"Accept": "application/json"})
    assert status == 200 and json.loads(body)["html"] == page


#: What the stack writes to the job definition's parameter (infra/aws/constructs/drift_monitoring.py).
PARAMETER = "/ivadas-dev/monitoring/processing-job"
REQUEST = {
    "RoleArn": "arn:aws:iam::123456789012:role/ivadas-dev-monitor",
    "AppSpecification": {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/training:1",
                         "ContainerEntrypoint": ["python", "-m", "pipelines.monitoring.job"]},
    "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 10}},
    "ProcessingOutputConfig": {"Outputs": [{"OutputName": "report", "S3Output": {
        "S3Uri": "s3://ivadas-artifacts/monitoring/latest", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    "Environment": {"INSPECTION_TABLE": "ivadas-inspections", "MONITOR_LOOKBACK_HOURS": "6"},
}
#: SageMaker's pattern for job names (CreateProcessingJob's API reference).
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@pytest.fixture
def on_aws(monkeypatch):
    """The API as deployed on AWS: the monitoring store in S3, the job definition in SSM (moto), and
    SageMaker behind botocore's Stubber (requests checked against the service model, AWS's errors)."""
    for key, value in {"ACCESS_CONTROL": "open", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "MONITORING_STORE": "s3://ivadas-artifacts/monitoring",
                       "MONITORING_JOB_PARAMETER": PARAMETER}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(routes_monitoring, "_store", None)
    monkeypatch.setattr(routes_monitoring, "_definition", None)
    with mock_aws():
        boto3.client("ssm", region_name="us-east-1").put_parameter(
            Name=PARAMETER, Type="String", Value=json.dumps({"namePrefix": "ivadas-dev-monitor-", "request": REQUEST}))
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        monkeypatch.setattr(routes_monitoring, "_sagemaker", sagemaker)
        with Stubber(sagemaker) as stubber:
            yield stubber
            stubber.assert_no_pending_responses()


def test_on_aws_run_now_starts_the_processing_job_the_schedule_starts(on_aws):
    names = []
    for _ in range(2):
        on_aws.add_response("create_processing_job",
                            {"ProcessingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:processing-job/x"},
                            {"ProcessingJobName": ANY, **REQUEST})
    for _ in range(2):
        status, _, body = call("POST", "/monitoring/run")
        answer = json.loads(body)
        assert status == 202 and answer["status"] == "started", body
        names.append(answer["job_name"])
    assert all(name.startswith("ivadas-dev-monitor-now-") and JOB_NAME.match(name) for name in names)
    assert len(set(names)) == 2  # SageMaker refuses a name used before: each run has its own


def test_a_job_name_fits_sagemakers_limit_with_the_longest_prefix():
    from datetime import datetime, timezone

    name = routes_monitoring.job_name("x" * 24 + "-monitor-", datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert len(name) <= 63 and JOB_NAME.match(name)


@pytest.mark.parametrize("code, message, status, error", [
    ("ResourceInUse", "Job name must be unique within an AWS account and region, and a job with this name already exists "
                      "(arn:aws:sagemaker:us-east-1:123456789012:processing-job/ivadas-dev-monitor-now-x)", 409, "monitoring_run_exists"),
    ("ResourceLimitExceeded", "The account-level service limit 'ml.m5.xlarge for processing job usage' is 1 Instances, with "
                              "current utilization of 1 Instances and a request delta of 1 Instances. Please use AWS Service "
                              "Quotas to request an increase for this quota.", 429, "monitoring_limit_reached"),
    ("ValidationException", "Could not assume role arn:aws:iam::123456789012:role/ivadas-dev-monitor. Please ensure that the "
                            "role exists and allows principal 'sagemaker.amazonaws.com' to assume the role.", 502,
     "monitoring_job_refused"),
])
def test_sagemakers_refusals_are_clear_errors(on_aws, code, message, status, error):
    on_aws.add_client_error("create_processing_job", service_error_code=code, service_message=message, http_status_code=400,
                            expected_params={"ProcessingJobName": ANY, **REQUEST})
    if code == "ResourceInUse":  # the job of that name is not this request (an earlier image's), so not taken as started
        on_aws.add_response("describe_processing_job", {
            "ProcessingJobName": "ivadas-dev-monitor-now-x", "ProcessingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:"
            "processing-job/ivadas-dev-monitor-now-x", "ProcessingJobStatus": "InProgress", "CreationTime": datetime(2026, 12, 1),
            "ProcessingResources": REQUEST["ProcessingResources"],
            "AppSpecification": {**REQUEST["AppSpecification"], "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/training:0"}},
            {"ProcessingJobName": ANY})
    got, _, body = call("POST", "/monitoring/run")
    answer = json.loads(body)
    assert got == status and answer["error"]["code"] == error
    assert "Traceback" not in body and answer["error"]["message"]


def test_a_deployment_without_the_job_definition_runs_on_its_schedule_only(on_aws, monkeypatch):
    monkeypatch.delenv("MONITORING_JOB_PARAMETER")
    status, _, body = call("POST", "/monitoring/run")
    assert status == 409 and json.loads(body)["error"]["code"] == "scheduled_only"

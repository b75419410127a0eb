"""The scheduled monitoring job as it runs in SageMaker Processing: verdicts from the inspection table
(written by the API's own DynamoDB log), the reference beside the model package's evaluation, people's
feedback markers, and the per-class CloudWatch metrics the "drift on class X" alarms watch."""

import base64
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from moto import mock_aws

from pipelines.monitoring.cloudwatch import DRIFT_METRIC, NAMESPACE
from pipelines.monitoring.reference import REFERENCE_FILE

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))
import inspection_log  # noqa: E402

REGION, TABLE, ARTIFACTS, DATA = "eu-west-1", "ivadas-inspections", "ivadas-artifacts", "ivadas-data"
GROUP = "ivadas-dev-training-patchcore"


def _reference(rng) -> dict:
    images = {"brightness": rng.normal(160, 5, 200).tolist(), "contrast": rng.normal(40, 3, 200).tolist()}
    return {"modality": "image", "model": {"kind": "patchcore", "version": "x"},
            "classes": {name: {"scores": rng.normal(1.0, 0.1, 100).tolist(), "inputs": {"images": images}, "threshold": 1.5}
                        for name in ("tiles", "fabric")}}


@pytest.fixture
def aws(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        import boto3

        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "day", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "day", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (ARTIFACTS, DATA):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        evaluation = "pipelines/ivadas-dev-training/executions/abc/evaluate"
        s3.put_object(Bucket=ARTIFACTS, Key=f"{evaluation}/{REFERENCE_FILE}", Body=json.dumps(_reference(np.random.default_rng(0))))
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        sagemaker.create_model_package(
            ModelPackageGroupName=GROUP, ModelApprovalStatus="Approved",
            InferenceSpecification={"Containers": [{"Image": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/e:1",
                                                    "ModelDataUrl": f"s3://{ARTIFACTS}/model.tar.gz"}],
                                    "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
            ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                          "S3Uri": f"s3://{ARTIFACTS}/{evaluation}/evaluation.json"}}})
        monkeypatch.setenv("INSPECTION_TABLE", TABLE)
        monkeypatch.setenv("DATA_BUCKET", DATA)
        monkeypatch.setenv("MONITOR_LOOKBACK_HOURS", "2")
        monkeypatch.setenv("MONITOR_OUTPUT", str(tmp_path / "output"))
        yield boto3


def _verdicts(boto3, class_name: str, brightness: float, count: int = 40) -> None:
    rng = np.random.default_rng(abs(hash(class_name)) % 1000)
    log = inspection_log.DynamoInspectionLog(TABLE, dynamodb=boto3.resource("dynamodb", region_name=REGION))
    now = datetime.now(timezone.utc)
    for index in range(count):
        result = {"class_name": class_name, "model": {"kind": "patchcore", "version": f"{GROUP}/1"},
                  "anomaly_score": 0.2, "raw_score": float(rng.normal(1.0, 0.1)), "threshold": 0.5, "is_anomaly": index == 0,
                  "input_statistics": {"brightness": float(rng.normal(brightness, 5)), "contrast": float(rng.normal(40, 3))}}
        record = inspection_log.inspection_record(result, f"{class_name}-{index}")
        record["timestamp"] = (now - timedelta(minutes=index)).isoformat(timespec="milliseconds")
        log.record(record)


def test_the_job_reads_the_table_and_publishes_drift_only_for_the_class_that_moved(aws, tmp_path, capsys):
    from pipelines.monitoring import job

    _verdicts(aws, "tiles", brightness=100)  # the line's lighting dropped
    _verdicts(aws, "fabric", brightness=160)
    aws.client("s3", region_name=REGION).put_object(
        Bucket=DATA, Key="datasets/feedback/inspection/tiles-0.json", Body=json.dumps({"truth": "anomalous", "correct": True}))
    assert job.main() == 0
    printed = capsys.readouterr().out
    assert "alarm: drift on class tiles" in printed and "drift on class fabric" not in printed
    summary = json.loads((tmp_path / "output" / "summary.json").read_text())
    groups = {g["class_name"]: g for g in summary["groups"]}
    assert groups["tiles"]["verdicts"] == 40 and groups["tiles"]["reference"] == "found"
    assert groups["tiles"]["quality"]["reviewed"] == 1 and groups["tiles"]["quality"]["precision"] == 1.0
    assert (tmp_path / "output" / "report.html").is_file()
    cloudwatch = aws.client("cloudwatch", region_name=REGION)
    published = {}
    for metric in cloudwatch.list_metrics(Namespace=NAMESPACE, MetricName=DRIFT_METRIC)["Metrics"]:
        [dimension] = metric["Dimensions"]
        stats = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE, MetricName=DRIFT_METRIC, Dimensions=metric["Dimensions"], Statistics=["Maximum"],
            StartTime=datetime.now(timezone.utc) - timedelta(hours=1), EndTime=datetime.now(timezone.utc) + timedelta(minutes=5),
            Period=3600)
        published[dimension["Value"]] = max(p["Maximum"] for p in stats["Datapoints"])
    assert published == {"tiles": 1.0, "fabric": 0.0}
    names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]}
    assert {"InputDriftPSI", "ScoreDriftPSI", "AnomalyRate", "Verdicts", "ReviewedPrecision"} <= names


def test_the_job_watches_calls_made_straight_to_an_endpoint_through_data_capture(aws, tmp_path, capsys, monkeypatch):
    """Darker tiles sent straight to the endpoint (data capture only) raise "drift on class tiles";
    fabric's verdicts, in the log and captured again with the API's InferenceId, count once."""
    import io
    import uuid

    from PIL import Image

    from pipelines.monitoring import job

    _verdicts(aws, "fabric", brightness=160)
    rng, now, lines = np.random.default_rng(3), datetime.now(timezone.utc), {}
    for index in range(40):
        buffer = io.BytesIO()
        Image.fromarray(np.clip(rng.normal(100, 40, (32, 32, 3)), 0, 255).astype(np.uint8)).save(buffer, format="PNG")
        answer = {"class_name": "tiles", "model": {"kind": "patchcore", "version": f"{GROUP}/1"}, "anomaly_score": 0.2,
                  "raw_score": float(rng.normal(1.0, 0.1)), "threshold": 0.5, "is_anomaly": False}
        when = now - timedelta(minutes=index)
        moment, hour = when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", lines.setdefault(f"{when:%Y/%m/%d/%H}", [])
        hour.append(json.dumps({"captureData": {
            "endpointInput": {"observedContentType": "image/png", "mode": "INPUT",
                              "data": base64.b64encode(buffer.getvalue()).decode(), "encoding": "BASE64"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": json.dumps(answer),
                               "encoding": "JSON"}},
            "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": moment}, "eventVersion": "0"}))
        fabric = {**answer, "class_name": "fabric", "input_statistics": {"brightness": 160.0, "contrast": 40.0}}
        hour.append(json.dumps({"captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT", "data": "{}", "encoding": "JSON"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": json.dumps(fabric),
                               "encoding": "JSON"}},
            "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceId": f"ivadas-api:fabric-{index}", "inferenceTime": moment},
            "eventVersion": "0"}))
    s3 = aws.client("s3", region_name=REGION)
    for hour, captured in lines.items():  # SageMaker's layout: one folder per hour of capture
        s3.put_object(Bucket=ARTIFACTS, Key=f"data-capture/patchcore/ivadas-dev-patchcore/AllTraffic/{hour}/{uuid.uuid4()}.jsonl",
                      Body="\n".join(captured).encode())
    monkeypatch.setenv("CAPTURE_S3_URI", f"s3://{ARTIFACTS}/data-capture")
    assert job.main() == 0
    printed = capsys.readouterr().out
    assert "alarm: drift on class tiles" in printed and "drift on class fabric" not in printed
    assert "40 verdicts from the inspection log, 40 from data capture (40 captured API calls left to the log" in printed
    summary = json.loads((tmp_path / "output" / "summary.json").read_text())
    groups = {g["class_name"]: g for g in summary["groups"]}
    assert groups["fabric"]["verdicts"] == 40 and groups["tiles"]["verdicts"] == 40
    assert summary["sources"] == {"inspection_log": 40, "data_capture": 40}
    assert "brightness" in groups["tiles"]["input_drift"]["drifted"]

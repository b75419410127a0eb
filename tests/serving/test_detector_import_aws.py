"""Detector imports against AWS: the files go to the data bucket through presigned POST forms (moto),
POST /models/import starts a SageMaker Processing job of the training image as the pipeline's role
(botocore Stubber, with the request SageMaker documents), the job itself (`pipelines.detector.job`,
run here on what SageMaker would download) registers the version in the Model Registry (moto), and
GET /models/imports/{id} reads its result — or its ExitMessage, the importer's words, when it failed."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.kinds.graphs import NAMES, constant_graph, ultralytics_metadata
from tests.kinds.test_detector_decoding import KNOWN
from tests.serving.test_detector_import_api import TRUTH, labelled_zip, names_yaml
from tests.serving.test_lifecycle_aws import call, send_form

DATA, ARTIFACTS = "ivadas-data", "ivadas-artifacts"
ROLE = "arn:aws:iam::123456789012:role/pipeline"
TRAINING_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ivadas-training:1"
ENDPOINT_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ivadas-endpoint:1"


@pytest.fixture
def aws(monkeypatch):
    """S3 and the Model Registry in moto; the API's SageMaker client stubbed (moto runs no job)."""
    import imports
    import routes_datasets
    import routes_imports

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "DATASET_STORE": f"s3://{DATA}", "MODEL_REGISTRY": "sagemaker", "ACCESS_CONTROL": "open",
                       "PIPELINE_NAME": "ivadas-training"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LOCAL_UPLOAD_SECRET", raising=False)
    with mock_aws():
        s3 = boto3.client("s3")
        for bucket in (DATA, ARTIFACTS):
            s3.create_bucket(Bucket=bucket)
        monkeypatch.setattr(routes_datasets, "_datasets", None)
        api_sagemaker = boto3.client("sagemaker")
        launcher = imports.SageMakerImports("ivadas-training", f"s3://{DATA}", ARTIFACTS, TRAINING_IMAGE, ENDPOINT_IMAGE, ROLE,
                                            "us-east-1", client=api_sagemaker, s3=s3)
        monkeypatch.setattr(routes_imports, "launcher_from_environment", lambda: launcher)
        with Stubber(api_sagemaker) as stub:
            yield s3, stub


def upload(s3, files: dict[str, tuple[str, bytes]]) -> str:
    from imports import limit_of

    status, started = call("POST", "/models/import/uploads", {role: {"filename": name, "size": len(data)}
                                                             for role, (name, data) in files.items()})
    assert status == 201, started
    for role, (_, data) in files.items():
        form = started["targets"][role]
        assert form["url"].startswith(f"https://{DATA}.s3")
        conditions = json.loads(base64.b64decode(form["fields"]["policy"]))["conditions"]
        assert ["content-length-range", 1, limit_of(role)] in conditions  # S3 refuses a file the form was not signed for
        assert form["fields"]["key"].startswith(f"datasets/imports/{started['import_id']}/")
        send_form(s3, form, data)
    return started["import_id"]


def expected_job(import_id: str, anomalous: list[str]) -> dict:
    job = f"ivadas-training-import-{import_id}"
    arguments = ["--target", "aws", "--input", "/opt/ml/processing/input", "--output", "/opt/ml/processing/output",
                 "--class", "thermal", "--iou", "0.7", "--pipeline", "ivadas-training", "--artifacts-bucket", ARTIFACTS,
                 "--inference-image-uri", ENDPOINT_IMAGE, "--imported-by", "local", "--graph-name", "thermal.onnx"]
    for name in anomalous:
        arguments += ["--anomalous", name]
    return {
        "ProcessingJobName": job, "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": TRAINING_IMAGE, "ContainerEntrypoint": ["python", "-m", "pipelines.detector.job"],
                             "ContainerArguments": arguments + ["--region", "us-east-1"]},
        "ProcessingInputs": [{"InputName": "upload", "S3Input": {
            "S3Uri": f"s3://{DATA}/datasets/imports/{import_id}/", "LocalPath": "/opt/ml/processing/input",
            "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "result", "S3Output": {
            "S3Uri": f"s3://{ARTIFACTS}/pipelines/ivadas-training/import-jobs/{import_id}", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "Environment": {"IVADAS_STEP": "import"}}


def run_job_as_sagemaker(s3, request: dict, workdir: Path, monkeypatch) -> int:
    """What the Processing job does: download the input prefix, run the container's command, upload
    the output at the end; its exit message is what DescribeProcessingJob returns."""
    from pipelines.detector.job import entry

    source = request["ProcessingInputs"][0]["S3Input"]["S3Uri"][len(f"s3://{DATA}/"):]
    local = workdir / "input"
    for item in s3.list_objects_v2(Bucket=DATA, Prefix=source).get("Contents", []):
        target = local / item["Key"][len(source):]
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(DATA, item["Key"], str(target))
    arguments = list(request["AppSpecification"]["ContainerArguments"])
    arguments[arguments.index("--input") + 1] = str(local)
    arguments[arguments.index("--output") + 1] = str(workdir / "output")
    monkeypatch.setenv("SM_OUTPUT_DIR", str(workdir / "ml-output"))
    code = entry(arguments)
    if code == 0:
        output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"][len(f"s3://{ARTIFACTS}/"):]
        s3.upload_file(str(workdir / "output" / "result.json"), ARTIFACTS, f"{output}/result.json")
    return code


def describe(job: str, status: str, **extra) -> dict:
    return {"ProcessingJobName": job, "ProcessingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{job}",
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}},
            "AppSpecification": {"ImageUri": TRAINING_IMAGE}, "CreationTime": dt.datetime(2026, 12, 1),
            "ProcessingJobStatus": status, **extra}


def start(stub, import_id: str, anomalous: list[str]) -> dict:
    request = expected_job(import_id, anomalous)
    stub.add_response("create_processing_job", {"ProcessingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/"
                                                                    f"{request['ProcessingJobName']}"}, request)
    status, record = call("POST", "/models/import", {"import_id": import_id, "class_name": "thermal", "anomalous_classes": anomalous})
    assert status == 201, record
    assert record["status"] == "Executing" and record["job_name"] == request["ProcessingJobName"] and record["backend"] == "sagemaker"
    return request


def uploaded(s3, import_id: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=DATA, Prefix=f"datasets/imports/{import_id}/").get("Contents", [])]


def test_an_import_on_aws_is_a_processing_job_that_registers_the_version(aws, tmp_path, monkeypatch):
    s3, stub = aws
    graph = constant_graph(tmp_path / "thermal.onnx", KNOWN, metadata=ultralytics_metadata(NAMES)).read_bytes()
    import_id = upload(s3, {"graph": ("thermal.onnx", graph), "names": ("data.yaml", names_yaml()),
                            "labelled": ("line3.zip", labelled_zip({"panel": TRUTH}))})
    request = start(stub, import_id, ["crack", "hot spot"])
    job = request["ProcessingJobName"]
    stub.add_response("describe_processing_job", describe(job, "InProgress"), {"ProcessingJobName": job})
    status, running = call("GET", f"/models/imports/{import_id}")
    assert status == 200 and running["status"] == "Executing"
    assert run_job_as_sagemaker(s3, request, tmp_path / "job", monkeypatch) == 0
    stub.add_response("describe_processing_job", describe(job, "Completed"), {"ProcessingJobName": job})
    status, done = call("GET", f"/models/imports/{import_id}")
    assert status == 200 and done["status"] == "Succeeded", done
    assert done["registered_version"] == "ivadas-training-detector/1" and done["version_status"] == "PendingManualApproval"
    assert done["evaluation"]["mean"]["map50"] == pytest.approx(((51 + 50 * 2 / 3) / 101 + 0.5 + 1.0) / 3, abs=1e-12)
    assert done["model_url"].startswith(f"s3://{ARTIFACTS}/pipelines/ivadas-training/imports/")
    package = boto3.client("sagemaker").list_model_packages(ModelPackageGroupName="ivadas-training-detector")
    assert len(package["ModelPackageSummaryList"]) == 1
    described = boto3.client("sagemaker").describe_model_package(
        ModelPackageName=package["ModelPackageSummaryList"][0]["ModelPackageArn"])
    assert described["InferenceSpecification"]["Containers"][0]["Image"] == ENDPOINT_IMAGE
    assert described["CustomerMetadataProperties"]["imported_by"] == "local"
    assert described["CustomerMetadataProperties"]["source"] == "thermal.onnx"
    assert uploaded(s3, import_id) == []  # the uploads go; the bundle is in the artifacts bucket
    # a finished import is not asked about again
    assert call("GET", f"/models/imports/{import_id}")[1]["status"] == "Succeeded"


def test_a_refused_detector_fails_the_job_with_the_importers_words_and_registers_nothing(aws, tmp_path, monkeypatch):
    s3, stub = aws
    graph = constant_graph(tmp_path / "bare.onnx", KNOWN).read_bytes()
    import_id = upload(s3, {"graph": ("thermal.onnx", graph), "names": ("data.yaml", names_yaml(NAMES[:2]))})
    request = start(stub, import_id, ["crack"])
    assert run_job_as_sagemaker(s3, request, tmp_path / "job", monkeypatch) == 1
    message = (tmp_path / "job" / "ml-output" / "message").read_text()
    job = request["ProcessingJobName"]
    stub.add_response("describe_processing_job", describe(job, "Failed", ExitMessage=message,
                                                          FailureReason="AlgorithmError: see job logs"),
                      {"ProcessingJobName": job})
    status, done = call("GET", f"/models/imports/{import_id}")
    assert status == 200 and done["status"] == "Failed"
    assert "names give 2 classes but the detector predicts 3" in done["failure_reason"]
    assert boto3.client("sagemaker").list_model_packages(ModelPackageGroupName="ivadas-training-detector")["ModelPackageSummaryList"] == []
    assert uploaded(s3, import_id) == []
    assert s3.list_objects_v2(Bucket=ARTIFACTS).get("KeyCount", 0) == 0


@pytest.mark.parametrize("code, message, status, error", [
    # the quota is the account's, not a fault of SageMaker's: ask again later, as for a monitoring run
    ("ResourceLimitExceeded", "The account-level service limit for ml.m5.large processing jobs is 0", 429, "import_limit_reached"),
    ("ValidationException", "Could not assume role arn:aws:iam::123456789012:role/pipeline. Please ensure that the role "
                            "exists and allows principal 'sagemaker.amazonaws.com' to assume the role.", 502, "import_unavailable"),
])
def test_sagemaker_refusing_the_job_is_an_error_in_words(aws, tmp_path, code, message, status, error):
    s3, stub = aws
    graph = constant_graph(tmp_path / "thermal.onnx", KNOWN, metadata=ultralytics_metadata(NAMES)).read_bytes()
    import_id = upload(s3, {"graph": ("thermal.onnx", graph)})
    stub.add_client_error("create_processing_job", code, message, 400)
    got, body = call("POST", "/models/import", {"import_id": import_id, "class_name": "thermal", "anomalous_classes": ["crack"]})
    assert got == status and body["error"]["code"] == error and message in body["error"]["message"]
    # nothing runs: the import says why, keeps its files and may be started again as it is
    refused = call("GET", f"/models/imports/{import_id}")[1]  # no Stubber response: SageMaker is not asked again
    assert refused["status"] == "Failed" and refused["failure_reason"] == body["error"]["message"] and refused["retryable"]
    assert refused["start_error"] == {"status": status, "code": error} and "job_name" not in refused
    assert uploaded(s3, import_id) == [f"datasets/imports/{import_id}/graph.onnx"]
    again = start(stub, import_id, ["crack"])  # the same request, now accepted; no file sent again
    stub.add_response("describe_processing_job", describe(again["ProcessingJobName"], "InProgress"),
                      {"ProcessingJobName": again["ProcessingJobName"]})
    record = call("GET", f"/models/imports/{import_id}")[1]
    assert record["status"] == "Executing" and not {"retryable", "failure_reason", "start_error", "ended_at"} & set(record)
    # started once, it cannot be started a second time
    got, body = call("POST", "/models/import", {"import_id": import_id, "class_name": "thermal", "anomalous_classes": ["crack"]})
    assert got == 409 and body["error"]["code"] == "import_started"


def test_an_import_whose_start_answer_was_lost_is_started_again_as_its_own_job(aws, tmp_path):
    """CreateProcessingJob carried out but its answer lost (the API call timed out): asking again finds
    the import's own job under its name instead of a 409 for ever, and does not start it twice."""
    s3, stub = aws
    graph = constant_graph(tmp_path / "thermal.onnx", KNOWN, metadata=ultralytics_metadata(NAMES)).read_bytes()
    import_id = upload(s3, {"graph": ("thermal.onnx", graph)})
    lost = expected_job(import_id, ["crack"])  # what the call whose answer was lost asked for
    job = lost["ProcessingJobName"]
    echoed = {key: lost[key] for key in ("AppSpecification", "ProcessingInputs", "ProcessingOutputConfig", "RoleArn")}
    taken = "Job name must be unique within an AWS account and region, and a job with this name already exists"
    # asked again with other choices: that job is not this request, so it is not taken for it
    stub.add_client_error("create_processing_job", "ResourceInUse", taken, 400, expected_params=expected_job(import_id, ["hot spot"]))
    stub.add_response("describe_processing_job", {**describe(job, "InProgress"), **echoed}, {"ProcessingJobName": job})
    got, body = call("POST", "/models/import", {"import_id": import_id, "class_name": "thermal", "anomalous_classes": ["hot spot"]})
    assert got == 409 and body["error"]["code"] == "import_job_exists" and job in body["error"]["message"]
    assert call("GET", f"/models/imports/{import_id}")[1]["retryable"] and uploaded(s3, import_id)
    # asked again as before: the job running under the import's name is its own, started once
    stub.add_client_error("create_processing_job", "ResourceInUse", taken, 400, expected_params=lost)
    stub.add_response("describe_processing_job", {**describe(job, "InProgress"), **echoed}, {"ProcessingJobName": job})
    got, record = call("POST", "/models/import", {"import_id": import_id, "class_name": "thermal", "anomalous_classes": ["crack"]})
    assert got == 201 and record["status"] == "Executing" and record["job_name"] == job and "retryable" not in record
    stub.assert_no_pending_responses()


def test_the_files_of_a_refused_import_nobody_starts_again_go_after_an_hour(aws, tmp_path, monkeypatch):
    import imports

    s3, stub = aws
    graph = constant_graph(tmp_path / "thermal.onnx", KNOWN, metadata=ultralytics_metadata(NAMES)).read_bytes()
    import_id = upload(s3, {"graph": ("thermal.onnx", graph)})
    stub.add_client_error("create_processing_job", "ResourceLimitExceeded", "The account-level service limit for ml.m5.large "
                          "processing jobs is 0", 400)
    assert call("POST", "/models/import", {"import_id": import_id, "class_name": "thermal", "anomalous_classes": ["crack"]})[0] == 429
    upload(s3, {"graph": ("other.onnx", graph)})  # a new upload sweeps; within the hour the refused one is kept
    assert uploaded(s3, import_id) and call("GET", f"/models/imports/{import_id}")[1]["retryable"]
    monkeypatch.setattr(imports, "ABANDONED_AFTER_S", -1)
    upload(s3, {"graph": ("other.onnx", graph)})
    swept = call("GET", f"/models/imports/{import_id}")[1]
    assert swept["status"] == "Failed" and not swept["retryable"] and uploaded(s3, import_id) == []
    assert "quota" in swept["failure_reason"] and "upload them again" in swept["failure_reason"]
    got, body = call("POST", "/models/import", {"import_id": import_id, "class_name": "thermal", "anomalous_classes": ["crack"]})
    assert got == 409 and body["error"]["code"] == "import_started"



def never_answers(**request):
    """CreateProcessingJob whose answer never comes back (SageMaker may or may not have started the job)."""
    from botocore.exceptions import ReadTimeoutError

    raise ReadTimeoutError(endpoint_url="https://api.sagemaker.us-east-1.amazonaws.com/")


def test_an_import_whose_start_never_answered_is_settled_not_queued_for_ever(aws, tmp_path, monkeypatch):
    import processing_jobs
    import routes_imports

    s3, stub = aws
    client = routes_imports.launcher_from_environment().client
    graph = constant_graph(tmp_path / "thermal.onnx", KNOWN, metadata=ultralytics_metadata(NAMES)).read_bytes()
    choices = {"class_name": "thermal", "anomalous_classes": ["crack"]}
    first, second = upload(s3, {"graph": ("thermal.onnx", graph)}), upload(s3, {"graph": ("thermal.onnx", graph)})
    not_found = "Could not find requested job with name ivadas-training-import-{}"
    with monkeypatch.context() as cut_off:
        cut_off.setattr(client, "create_processing_job", never_answers)
        for import_id in (first, second):
            got, body = call("POST", "/models/import", {"import_id": import_id, **choices})
            assert got == 500 and body["error"]["code"] == "internal_error"
    # within the call's time its job may still appear: Queued
    stub.add_client_error("describe_processing_job", "ValidationException", not_found.format(first), 400)
    assert call("GET", f"/models/imports/{first}")[1]["status"] == "Queued"
    # SageMaker did start the first: found under its name, followed from now on
    job = expected_job(first, ["crack"])["ProcessingJobName"]
    stub.add_response("describe_processing_job", describe(job, "InProgress"), {"ProcessingJobName": job})
    found = call("GET", f"/models/imports/{first}")[1]
    assert found["status"] == "Executing" and found["job_name"] == job
    # the second never started: once the call is surely over, Failed, and it may be started again on its files
    monkeypatch.setattr(processing_jobs, "START_SETTLED_AFTER_S", -1)
    stub.add_client_error("describe_processing_job", "ValidationException", not_found.format(second), 400,
                          expected_params={"ProcessingJobName": f"ivadas-training-import-{second}"})
    lost = call("GET", f"/models/imports/{second}")[1]
    assert lost["status"] == "Failed" and lost["retryable"] and "never started" in lost["failure_reason"]
    assert uploaded(s3, second) == [f"datasets/imports/{second}/graph.onnx"]
    start(stub, second, ["crack"])
    stub.assert_no_pending_responses()


def test_an_import_whose_start_never_answered_may_be_asked_again_at_once(aws, tmp_path, monkeypatch):
    import routes_imports

    s3, stub = aws
    client = routes_imports.launcher_from_environment().client
    graph = constant_graph(tmp_path / "thermal.onnx", KNOWN, metadata=ultralytics_metadata(NAMES)).read_bytes()
    import_id = upload(s3, {"graph": ("thermal.onnx", graph)})
    with monkeypatch.context() as cut_off:
        cut_off.setattr(client, "create_processing_job", never_answers)
        assert call("POST", "/models/import", {"import_id": import_id, "class_name": "thermal", "anomalous_classes": ["crack"]})[0] == 500
    start(stub, import_id, ["crack"])  # it had not started: started now, once
    stub.assert_no_pending_responses()

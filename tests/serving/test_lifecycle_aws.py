"""The life-cycle routes against AWS: datasets in S3 (moto) with presigned POST forms, trainings
through SageMaker Pipelines and approval through the Model Registry (botocore Stubber, with the
requests and answers SageMaker documents)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from tests.serving.conftest import png_bytes
from tests.serving.test_datasets_api import Context, api_event, make_zip

BUCKET = "ivadas-data"
PIPELINE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/ivadas-training"
EXECUTION_ARN = PIPELINE_ARN + "/execution/abc123"


@pytest.fixture
def aws(monkeypatch):
    import routes_datasets

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "DATASET_STORE": f"s3://{BUCKET}", "MODEL_REGISTRY": "sagemaker", "ACCESS_CONTROL": "open",
                       "PIPELINE_NAME": "ivadas-training"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LOCAL_UPLOAD_SECRET", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setattr(routes_datasets, "_datasets", None)
        yield boto3.client("s3")


def call(method, path, body=None, query=None):
    import predict_app

    response = predict_app.handler(api_event(method, path, body, query), Context())
    return response["statusCode"], json.loads(response["body"])


def keys(s3, prefix="") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def send_form(s3, target: dict, data: bytes) -> None:
    """What S3 does with the browser's form: the object lands under the form's key (its conditions
    are checked by S3 itself; here the policy is read back and checked below)."""
    s3.put_object(Bucket=BUCKET, Key=target["fields"]["key"], Body=data, ServerSideEncryption="aws:kms")


def test_a_zip_goes_to_s3_through_a_presigned_post_and_into_the_class(aws):
    data = make_zip({f"tiles/train/good/{i}.png": png_bytes((16, 16), (i, i, i)) for i in range(3)})
    status, started = call("POST", "/datasets/uploads", {"type": "zip", "filename": "t.zip", "size": len(data)})
    assert status == 201, started
    target = started["targets"]["file"]
    # the regional virtual-hosted endpoint: the origin the UI's content security policy allows
    assert target["url"] == f"https://{BUCKET}.s3.us-east-1.amazonaws.com/"
    assert target["fields"]["key"] == f"datasets/uploads/{started['upload_id']}/file"
    policy = json.loads(base64.b64decode(target["fields"]["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 200 * 1024 * 1024] in conditions
    assert {"x-amz-server-side-encryption": "aws:kms"} in conditions and {"bucket": BUCKET} in conditions
    assert {"key": target["fields"]["key"]} in conditions and "x-amz-signature" in target["fields"]
    send_form(aws, target, data)
    status, done = call("POST", f"/datasets/uploads/{started['upload_id']}/complete")
    assert status == 201 and done["classes"]["tiles"]["train_good"] == 3
    assert keys(aws, "datasets/uploads/") == [] and len(keys(aws, "datasets/classes/tiles/train/good/")) == 3
    bomb = make_zip({"../x.png": png_bytes()})
    status, started = call("POST", "/datasets/uploads", {"type": "zip", "filename": "b.zip", "size": len(bomb)})
    send_form(aws, started["targets"]["file"], bomb)
    assert call("POST", f"/datasets/uploads/{started['upload_id']}/complete")[0] == 400
    assert keys(aws, "datasets/uploads/") == [] and len(keys(aws, "datasets/classes/")) == 3


def seed_class(s3, good=12):
    import routes_datasets
    from class_datasets import new_image

    images = [new_image(png_bytes((16, 16), (i, 2 * i, 40)), f"{i}.png", "good") for i in range(good)]
    images += [new_image(png_bytes((16, 16), (200, i, 40)), f"t{i}.png", "good", split="test") for i in range(2)]
    images += [new_image(png_bytes((16, 16), (250, 250, i)), f"a{i}.png", "anomalous", "hole") for i in range(2)]
    routes_datasets.dataset_store().add("tiles", images)


def test_a_training_starts_the_pipeline_on_the_snapshot_and_reports_its_steps(aws, monkeypatch):
    import routes_trainings
    import trainings

    seed_class(aws)
    sagemaker = boto3.client("sagemaker")
    stub = Stubber(sagemaker)
    monkeypatch.setattr(routes_trainings, "launcher_from_environment",
                        lambda: trainings.SageMakerLauncher("ivadas-training", f"s3://{BUCKET}", client=sagemaker))
    expected = {"PipelineName": "ivadas-training", "ClientRequestToken": ANY, "PipelineExecutionDisplayName": ANY,
                "PipelineExecutionDescription": ANY, "PipelineParameters": ANY}
    stub.add_response("start_pipeline_execution", {"PipelineExecutionArn": EXECUTION_ARN}, expected)
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
    stub.add_response("describe_pipeline_execution", {"PipelineExecutionArn": EXECUTION_ARN, "PipelineExecutionStatus": "Executing"},
                      {"PipelineExecutionArn": EXECUTION_ARN})
    stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
        {"StepName": "Preprocess", "StepStatus": "Succeeded", "StartTime": now, "EndTime": now + dt.timedelta(seconds=90)},
        {"StepName": "Train", "StepStatus": "Executing", "StartTime": now}]}, {"PipelineExecutionArn": EXECUTION_ARN, "SortOrder": "Ascending"})
    stub.add_response("describe_pipeline_execution", {"PipelineExecutionArn": EXECUTION_ARN, "PipelineExecutionStatus": "Failed",
                                                      "FailureReason": "Step failure: One or multiple steps failed."},
                      {"PipelineExecutionArn": EXECUTION_ARN})
    stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
        {"StepName": "Preprocess", "StepStatus": "Succeeded", "StartTime": now, "EndTime": now + dt.timedelta(seconds=90)},
        {"StepName": "Train", "StepStatus": "Failed", "StartTime": now,
         "FailureReason": "ClientError: AlgorithmError: class 'tiles' has no readable images in train/good"}]},
        {"PipelineExecutionArn": EXECUTION_ARN, "SortOrder": "Ascending"})
    with stub:
        status, started = call("POST", "/trainings", {"classes": ["tiles"], "kind": "patchcore", "settings": {"image_size": 64},
                                                      "gate": 0.8})
        assert status == 201, started
        assert started["execution_arn"] == EXECUTION_ARN and started["status"] == "Executing"
        assert started["data_uri"] == f"s3://{BUCKET}/datasets/snapshots/{started['snapshot']}"
        assert f"datasets/snapshots/{started['snapshot']}/manifest.json" in keys(aws, "datasets/snapshots/")
        # a second training of the class while SageMaker still runs the first is refused
        status, refused = call("POST", "/trainings", {"classes": ["tiles"]})
        assert (status, refused["error"]["code"]) == (409, "training_running")
        status, failed = call("GET", f"/trainings/{started['id']}")
        assert failed["status"] == "Failed" and "no readable images" in failed["failure_reason"]
        train = next(s for s in failed["steps"] if s["name"] == "Train")
        assert train["status"] == "Failed" and train["what"]
        status, body = call("POST", f"/trainings/{started['id']}/approval", {"decision": "approve", "reason": "looks fine"})
        assert (status, body["error"]["code"]) == (409, "training_failed")
    stub.assert_no_pending_responses()


def test_the_pipeline_is_started_with_the_snapshot_as_its_parameters(aws):
    import trainings

    sagemaker = boto3.client("sagemaker")
    record = {"id": "20261201T120000-abcdef12", "classes": ["tiles", "wood"], "kind": "softpatch", "settings": {"backbone": "resnet18"},
              "snapshot": "0123456789abcdef0123", "data_key": "datasets/snapshots/0123456789abcdef0123", "gate": 0.85}
    parameters = [{"Name": "DataUri", "Value": f"s3://{BUCKET}/datasets/snapshots/0123456789abcdef0123"},
                  {"Name": "DataSnapshot", "Value": "0123456789abcdef0123"}, {"Name": "Classes", "Value": "tiles,wood"},
                  {"Name": "ModelKind", "Value": "softpatch"}, {"Name": "KindSettings", "Value": '{"backbone": "resnet18"}'},
                  {"Name": "AurocGate", "Value": "0.85"}]
    with Stubber(sagemaker) as stub:
        stub.add_response("start_pipeline_execution", {"PipelineExecutionArn": EXECUTION_ARN},
                          {"PipelineName": "ivadas-training", "ClientRequestToken": uuid.uuid5(uuid.NAMESPACE_URL, record["id"]).hex,
                           "PipelineExecutionDisplayName": "api-20261201T120000-abcdef12",
                           "PipelineExecutionDescription": ANY, "PipelineParameters": parameters})
        started = trainings.SageMakerLauncher("ivadas-training", f"s3://{BUCKET}", client=sagemaker).start(dict(record))
        assert started["execution_arn"] == EXECUTION_ARN
        stub.add_client_error("start_pipeline_execution", "ResourceLimitExceeded", "Too many executions", 400)
        from api_core import ApiError

        with pytest.raises(ApiError) as refused:
            trainings.SageMakerLauncher("ivadas-training", f"s3://{BUCKET}", client=sagemaker).start(dict(record))
        assert refused.value.status == 502 and "Too many executions" in refused.value.message


def package(number: int, status: str, history: list[dict]) -> dict:
    return {"ModelPackageGroupName": "ivadas-training-patchcore", "ModelPackageVersion": number,
            "ModelPackageName": "ivadas-training-patchcore", "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "ModelPackageArn": f"arn:aws:sagemaker:us-east-1:123456789012:model-package/ivadas-training-patchcore/{number}",
            "ModelPackageStatus": "Completed", "ModelApprovalStatus": status, "CreationTime": dt.datetime(2026, 12, 1),
            "InferenceSpecification": {"Containers": [{"Image": "x", "ModelDataUrl": "s3://a/model.tar.gz"}],
                                       "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
            "CustomerMetadataProperties": {"classes": "tiles", **{f"ivadas:transition:{i:04d}": json.dumps(h) for i, h in enumerate(history)}}}


def test_approval_updates_the_model_package_as_the_cli_registry_reads_it():
    import model_versions
    from pipelines.registry import SageMakerRegistry

    sagemaker = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    registered = {"status": "PendingManualApproval", "at": "2026-12-01T00:00:00.000+00:00", "by": "pipeline", "reason": "registered"}
    summary = {"ModelPackageSummaryList": [{"ModelPackageGroupName": "ivadas-training-patchcore", "ModelPackageVersion": 3,
                                            "ModelPackageArn": package(3, "x", [])["ModelPackageArn"], "CreationTime": dt.datetime(2026, 12, 1),
                                            "ModelPackageStatus": "Completed", "ModelApprovalStatus": "PendingManualApproval"}]}
    with Stubber(sagemaker) as stub:
        stub.add_response("list_model_packages", summary, {"ModelPackageGroupName": "ivadas-training-patchcore"})
        stub.add_response("describe_model_package", package(3, "PendingManualApproval", [registered]),
                          {"ModelPackageName": package(3, "x", [])["ModelPackageArn"]})
        stub.add_response("update_model_package", {"ModelPackageArn": package(3, "x", [])["ModelPackageArn"]}, {
            "ModelPackageArn": package(3, "x", [])["ModelPackageArn"], "ModelApprovalStatus": "Approved",
            "ApprovalDescription": "report read", "CustomerMetadataProperties": ANY})
        approved = {"status": "Approved", "at": "2026-12-01T01:00:00.000+00:00", "by": "qe", "reason": "report read"}
        stub.add_response("list_model_packages", summary, {"ModelPackageGroupName": "ivadas-training-patchcore"})
        stub.add_response("describe_model_package", package(3, "Approved", [registered, approved]),
                          {"ModelPackageName": package(3, "x", [])["ModelPackageArn"]})
        version = model_versions.SageMakerVersions(sagemaker).set_status("ivadas-training-patchcore", 3, "Approved", "report read", "qe")
    assert version["status"] == "Approved" and version["history"][-1]["reason"] == "report read"
    # the CLI's registry reads the same history from the same package
    read = SageMakerRegistry(client=sagemaker)._to_version(package(3, "Approved", [registered, approved]))
    assert [h["status"] for h in read.history] == ["PendingManualApproval", "Approved"] and read.history[-1]["by"] == "qe"


def test_the_transition_written_on_approval_is_the_next_history_key():
    import model_versions

    sagemaker = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    captured = {}
    registered = {"status": "PendingManualApproval", "at": "t0", "by": "pipeline", "reason": "registered"}
    versions = model_versions.SageMakerVersions(sagemaker)
    versions.get = lambda group, number: {"id": f"{group}/{number}", "status": "PendingManualApproval", "arn": "arn:x",
                                          "history": [registered], "metadata": {"classes": "tiles"}}
    sagemaker.update_model_package = lambda **request: captured.update(request) or {"ModelPackageArn": "arn:x"}
    versions.set_status("ivadas-training-patchcore", 3, "Rejected", "missed scratches on 3 of 8 images", "qe")
    properties = captured["CustomerMetadataProperties"]
    assert json.loads(properties["ivadas:transition:0001"]) | {"at": None} == {
        "status": "Rejected", "at": None, "by": "qe", "reason": "missed scratches on 3 of 8 images"}
    assert properties["classes"] == "tiles" and captured["ModelApprovalStatus"] == "Rejected"
    versions.get = lambda group, number: {"id": f"{group}/{number}", "status": "Rejected", "arn": "arn:x", "history": [], "metadata": {}}
    from api_core import ApiError

    with pytest.raises(ApiError) as refused:
        versions.set_status("ivadas-training-patchcore", 3, "Approved", "changed my mind", "qe")
    assert refused.value.status == 409 and refused.value.code == "rejected_version"


def test_feedback_finds_a_dynamodb_inspection_with_or_without_its_timestamp(aws):
    import inspection_log

    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(TableName="inspections", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "day", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                          AttributeDefinitions=[{"AttributeName": "day", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
    log = inspection_log.DynamoInspectionLog("inspections", BUCKET, store_anomalous_images=True)
    result = {"class_name": "tiles", "model": {"kind": "patchcore", "version": "ivadas-training-patchcore/2"},
              "anomaly_score": 0.9, "raw_score": 4.0, "threshold": 0.5, "is_anomaly": True}
    for rid in ("other-1", "wanted", "other-2"):
        record = log.record(inspection_log.inspection_record(result, rid), png_bytes())
    found = log.get("wanted")
    assert found["request_id"] == "wanted" and found["image_key"].startswith(f"s3://{BUCKET}/inspections/")
    assert log.get("other-2", record["timestamp"])["request_id"] == "other-2"
    assert log.get("nobody") is None and log.get("wanted", "2020-01-01T00:00:00.000+00:00") is None


def test_a_trial_on_aws_is_a_processing_job_of_the_training_image(aws, monkeypatch):
    import trials

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="ivadas-artifacts")
    sagemaker = boto3.client("sagemaker")
    launcher = trials.SageMakerTrials("ivadas-training", f"s3://{BUCKET}", "ivadas-artifacts", "123.dkr.ecr/ivadas-training:1",
                                      "arn:aws:iam::123456789012:role/pipeline", client=sagemaker, s3=s3)
    record = {"id": "f" * 32, "class_name": "tiles", "model_url": "s3://ivadas-artifacts/pipelines/x/model.tar.gz",
              "status": "Queued"}
    job = "ivadas-training-trial-" + "f" * 24
    with Stubber(sagemaker) as stub:
        stub.add_response("create_processing_job", {"ProcessingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{job}"}, {
            "ProcessingJobName": job, "RoleArn": "arn:aws:iam::123456789012:role/pipeline",
            "AppSpecification": {"ImageUri": "123.dkr.ecr/ivadas-training:1", "ContainerEntrypoint": ["python", "-m", "pipelines.steps.trial"],
                                 "ContainerArguments": ["--class-name", "tiles"]},
            "ProcessingInputs": [
                {"InputName": "model", "S3Input": {"S3Uri": record["model_url"], "LocalPath": "/opt/ml/processing/model",
                                                   "S3DataType": "S3Prefix", "S3InputMode": "File"}},
                {"InputName": "images", "S3Input": {"S3Uri": f"s3://{BUCKET}/datasets/trials/{'f' * 32}/", "LocalPath": "/opt/ml/processing/images",
                                                    "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "results", "S3Output": {
                "S3Uri": f"s3://ivadas-artifacts/trials/{'f' * 32}", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 10}},
            "StoppingCondition": {"MaxRuntimeInSeconds": 1800}, "Environment": {"IVADAS_STEP": "trial"}})
        started = launcher.start(dict(record))
        assert started["status"] == "Executing" and started["job_name"] == job
        describe = {"ProcessingJobName": job, "ProcessingJobArn": "arn:x", "ProcessingResources": {"ClusterConfig": {
            "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 10}}, "AppSpecification": {"ImageUri": "x"},
            "CreationTime": dt.datetime(2026, 12, 1)}
        stub.add_response("describe_processing_job", {**describe, "ProcessingJobStatus": "InProgress"}, {"ProcessingJobName": job})
        assert launcher.refresh(dict(started))["status"] == "Executing"
        results = [{"name": "0.png", "anomaly_score": 0.9, "is_anomaly": True, "threshold": 0.5}]
        s3.put_object(Bucket="ivadas-artifacts", Key=f"trials/{'f' * 32}/results.json", Body=json.dumps({"results": results}))
        stub.add_response("describe_processing_job", {**describe, "ProcessingJobStatus": "Completed"}, {"ProcessingJobName": job})
        done = launcher.refresh(dict(started))
        assert done["status"] == "Succeeded" and done["results"] == results
        stub.add_response("describe_processing_job", {**describe, "ProcessingJobStatus": "Failed",
                                                      "FailureReason": "AlgorithmError: no model.tar.gz"}, {"ProcessingJobName": job})
        failed = launcher.refresh(dict(started))
        assert failed["status"] == "Failed" and "no model.tar.gz" in failed["failure_reason"]


def test_the_trial_step_scores_the_images_in_their_order(tmp_path, patchcore_bundle, demo_data):
    from pipelines.steps.trial import main

    images = tmp_path / "images"
    images.mkdir()
    for index, source in enumerate(["tiles/test/good/000.png", "tiles/test/hole/000.png"] * 6):
        (images / f"{index}.png").write_bytes((demo_data / source).read_bytes())
    (images / "12.png").write_bytes(b"not an image")
    main(["--class-name", "tiles", "--model", str(patchcore_bundle[0]), "--images", str(images), "--output", str(tmp_path / "out")])
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert [r["name"] for r in results] == [f"{i}.png" for i in range(13)]  # 10 after 9, not after 1
    assert [r["is_anomaly"] for r in results[:2]] == [False, True] and results[1]["heatmap_png_base64"]
    assert "error" in results[12]


class OneVersion:
    """The Model Registry holding version 3 of the PatchCore group, trained on tiles."""

    def get(self, group: str, number: int) -> dict:
        return {"id": f"{group}/{number}", "status": "PendingManualApproval", "metadata": {"classes": "tiles"},
                "model_url": "s3://ivadas-artifacts/pipelines/x/model.tar.gz"}


@pytest.mark.parametrize("code, message, status, error", [
    ("ResourceLimitExceeded", "The account-level service limit 'ml.m5.large for processing job usage' is 1 Instances, with "
                              "current utilization of 1 Instances and a request delta of 1 Instances.", 429, "trial_limit_reached"),
    ("ValidationException", "Could not assume role arn:aws:iam::123456789012:role/pipeline. Please ensure that the role "
                            "exists and allows principal 'sagemaker.amazonaws.com' to assume the role.", 502, "trial_unavailable"),
])
def test_a_trial_sagemaker_refuses_to_start_is_failed_with_its_reason_not_queued_for_ever(aws, monkeypatch, code, message,
                                                                                          status, error):
    import model_versions
    import routes_trainings
    import trials

    sagemaker = boto3.client("sagemaker")
    launcher = trials.SageMakerTrials("ivadas-training", f"s3://{BUCKET}", "ivadas-artifacts", "123.dkr.ecr/ivadas-training:1",
                                      "arn:aws:iam::123456789012:role/pipeline", client=sagemaker, s3=aws)
    monkeypatch.setattr(routes_trainings, "trial_launcher", lambda: launcher)
    monkeypatch.setattr(model_versions, "from_environment", OneVersion)
    image = base64.b64encode(png_bytes((16, 16), (9, 9, 9))).decode()
    with Stubber(sagemaker) as stub:
        stub.add_client_error("create_processing_job", code, message, 400)
        got, body = call("POST", "/trials", {"kind": "patchcore", "version": 3, "class_name": "tiles",
                                             "images": [{"name": "a.png", "image_base64": image}]})
        stub.assert_no_pending_responses()
    assert got == status and body["error"]["code"] == error and message in body["error"]["message"]
    listed = call("GET", "/trials")[1]["trials"]
    assert len(listed) == 1 and listed[0]["status"] == "Failed"
    trial = call("GET", f"/trials/{listed[0]['id']}")[1]  # nothing to ask SageMaker about: no Stubber response is used
    assert trial["failure_reason"] == body["error"]["message"] and trial["ended_at"] and "job_name" not in trial
    assert trial["start_error"] == {"status": status, "code": error}
    assert keys(aws, f"datasets/trials/{trial['id']}/") == [f"datasets/trials/{trial['id']}/0.png"]  # its images stay


def test_a_trial_whose_start_never_answered_finds_its_job_or_fails_instead_of_waiting_for_ever(aws):
    """The start call timed out (the trial is Queued with no job): its job, if SageMaker started it,
    is found under the trial's name; if there is none once the call is surely over, the trial fails."""
    import trials

    sagemaker = boto3.client("sagemaker")
    launcher = trials.SageMakerTrials("ivadas-training", f"s3://{BUCKET}", "ivadas-artifacts", "123.dkr.ecr/ivadas-training:1",
                                      "arn:aws:iam::123456789012:role/pipeline", client=sagemaker, s3=aws)
    job = "ivadas-training-trial-" + "e" * 24
    just_made = {"id": "e" * 32, "status": "Queued", "created_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    long_ago = {**just_made, "created_at": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)).isoformat()}
    not_found = ("ValidationException", f"Could not find requested job with name {job}")
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_processing_job", *not_found, 400, expected_params={"ProcessingJobName": job})
        assert launcher.refresh(dict(just_made)) == just_made  # the start may still be under way
        stub.add_client_error("describe_processing_job", "ThrottlingException", "Rate exceeded", 400)
        assert launcher.refresh(dict(long_ago)) == long_ago  # no answer is no evidence: asked again next time
        stub.add_client_error("describe_processing_job", *not_found, 400, expected_params={"ProcessingJobName": job})
        lost = launcher.refresh(dict(long_ago))
        assert lost["status"] == "Failed" and "never started" in lost["failure_reason"] and lost["ended_at"]
        stub.add_response("describe_processing_job", {
            "ProcessingJobName": job, "ProcessingJobArn": "arn:x", "ProcessingJobStatus": "InProgress",
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 10}},
            "AppSpecification": {"ImageUri": "x"}, "CreationTime": dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)},
            {"ProcessingJobName": job})
        found = launcher.refresh(dict(long_ago))
        assert found["status"] == "Executing" and found["job_name"] == job and found["started_at"].startswith("2026-12-01")
        stub.assert_no_pending_responses()

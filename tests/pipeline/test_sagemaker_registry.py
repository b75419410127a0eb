"""The SageMaker adapters against moto: registry transitions and starting the pipeline."""

import json

import boto3
import pytest
from moto import mock_aws

from pipelines import aws
from pipelines.definition import PipelineSettings
from pipelines.registry import APPROVED, PENDING, REJECTED, RegistryError, SageMakerRegistry, parse_version_id

GROUP = "ivadas-training-patchcore"


@pytest.fixture
def client(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("sagemaker", region_name="us-east-1")


def register(registry, n=1):
    return [registry.register(GROUP, f"s3://artifacts/model-{i}.tar.gz", {}, {"classes": "tiles", "data_uri": "s3://data/demo"})
            for i in range(n)]


def test_register_creates_group_and_pending_versions(client):
    registry = SageMakerRegistry(client)
    first, second = register(registry, 2)
    assert (first.version, second.version) == (1, 2)
    assert first.status == PENDING and first.model_url == "s3://artifacts/model-0.tar.gz"
    assert first.metadata == {"classes": "tiles", "data_uri": "s3://data/demo"}
    assert first.history[0]["reason"] == "registered"
    assert registry.groups() == [GROUP]
    assert registry.served(GROUP) is None


def test_approve_reject_and_served_fallback(client):
    registry = SageMakerRegistry(client)
    register(registry, 2)
    registry.set_status(GROUP, 1, APPROVED, "passed review", by="qa")
    registry.set_status(GROUP, 2, APPROVED, "better on line 2", by="qa")
    assert registry.served(GROUP).version == 2
    rejected = registry.set_status(GROUP, 2, REJECTED, "false alarms on shift B", by="qa")
    assert [h["status"] for h in rejected.history] == [PENDING, APPROVED, REJECTED]
    assert rejected.history[-1]["reason"] == "false alarms on shift B"
    assert registry.served(GROUP).version == 1
    assert [v.version for v in registry.list(GROUP, APPROVED)] == [1]
    assert [v.version for v in registry.list(GROUP, REJECTED)] == [2]
    package = client.describe_model_package(ModelPackageName=rejected.arn)
    assert package["ModelApprovalStatus"] == REJECTED


def test_forbidden_transitions_change_nothing(client):
    registry = SageMakerRegistry(client)
    register(registry, 1)
    registry.set_status(GROUP, 1, REJECTED, "bad")
    with pytest.raises(RegistryError, match="rejected"):
        registry.set_status(GROUP, 1, APPROVED, "try again")
    with pytest.raises(RegistryError, match="no model version"):
        registry.set_status(GROUP, 7, APPROVED, "missing")
    assert registry.get(GROUP, 1).status == REJECTED and len(registry.get(GROUP, 1).history) == 2


def upload_dataset(s3, files: dict[str, bytes]) -> None:
    s3.create_bucket(Bucket="data")
    for key, body in files.items():
        s3.put_object(Bucket="data", Key=f"datasets/{key}", Body=body)


def start_parameters(client, execution: str) -> dict:
    parameters = client.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution)["PipelineParameters"]
    return {p["Name"]: p["Value"] for p in parameters}


def test_start_passes_parameters_and_the_data_snapshot(client, monkeypatch):
    import pipelines.definition as definition

    monkeypatch.setattr(aws, "definition_json", lambda settings: json.dumps({"Version": "2020-12-01", "Steps": [], "Parameters": [
        {"Name": "DataUri", "Type": "String", "DefaultValue": "s3://data/datasets"}]}))
    settings = PipelineSettings(role_arn="arn:aws:iam::123456789012:role/ivadas-pipeline")
    arn = aws.upsert(settings, client)
    assert arn.endswith(":pipeline/ivadas-training")
    s3 = boto3.client("s3", region_name="us-east-1")
    upload_dataset(s3, {"tiles/train/good/0.png": b"a", "fabric/train/good/0.png": b"b", "wood/train/good/0.png": b"c"})
    execution = aws.start("ivadas-training", {"Classes": "tiles,fabric", "ModelKind": "softpatch", "AurocGate": 0.95}, client, s3=s3)
    parameters = start_parameters(client, execution)
    snapshot = parameters.pop("DataSnapshot")
    assert parameters == {"Classes": "tiles,fabric", "ModelKind": "softpatch", "AurocGate": "0.95"}
    assert snapshot == aws.data_snapshot(s3, "s3://data/datasets", ["tiles", "fabric"]) and len(snapshot) == 20
    assert aws.upsert(settings, client) == arn  # second upsert updates the same pipeline
    assert definition.UNKNOWN_SNAPSHOT != snapshot


def test_the_snapshot_changes_with_the_data_a_run_reads_and_only_with_it(client):
    s3 = boto3.client("s3", region_name="us-east-1")
    upload_dataset(s3, {"tiles/train/good/0.png": b"a", "wood/train/good/0.png": b"c"})
    before = aws.data_snapshot(s3, "s3://data/datasets", ["tiles"])
    s3.put_object(Bucket="data", Key="datasets/wood/train/good/0.png", Body=b"changed")  # another class
    assert aws.data_snapshot(s3, "s3://data/datasets/", ["tiles"]) == before
    s3.put_object(Bucket="data", Key="datasets/tiles/train/good/0.png", Body=b"changed")
    assert aws.data_snapshot(s3, "s3://data/datasets", ["tiles"]) != before
    with pytest.raises(ValueError, match="no data under s3://data/datasets for bolts"):
        aws.data_snapshot(s3, "s3://data/datasets", ["bolts"])
    with pytest.raises(ValueError, match="is not an s3:// URI"):
        aws.data_snapshot(s3, "/local/folder", ["tiles"])


def test_a_given_snapshot_is_passed_as_is(client, monkeypatch):
    monkeypatch.setattr(aws, "definition_json", lambda settings: json.dumps({"Version": "2020-12-01", "Steps": []}))
    aws.upsert(PipelineSettings(role_arn="arn:aws:iam::123456789012:role/ivadas-pipeline"), client)
    execution = aws.start("ivadas-training", {"DataUri": "s3://data/x", "DataSnapshot": "abc123"}, client)
    assert start_parameters(client, execution) == {"DataUri": "s3://data/x", "DataSnapshot": "abc123"}


def test_status_reports_steps_and_failure():
    from botocore.stub import Stubber

    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/ivadas-training/execution/abc"
    with Stubber(client) as stub:
        stub.add_response("describe_pipeline_execution", {"PipelineExecutionArn": arn, "PipelineExecutionStatus": "Failed",
                                                          "FailureReason": "Step QualityGateFailed failed"}, {"PipelineExecutionArn": arn})
        stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
            {"StepName": "Evaluate", "StepStatus": "Succeeded"},
            {"StepName": "QualityGateFailed", "StepStatus": "Failed", "FailureReason": "mean image AUROC 0.8 is below the gate 0.9"},
        ]}, {"PipelineExecutionArn": arn})
        result = aws.status(arn, client)
    assert result["status"] == "Failed"
    assert result["steps"][1] == {"name": "QualityGateFailed", "status": "Failed", "failure_reason": "mean image AUROC 0.8 is below the gate 0.9"}


def test_version_ids_name_groups_by_kind_as_sagemaker_spells_them():
    prefix = "ivadas-dev-training"
    assert parse_version_id("patchcore/3", prefix) == ("ivadas-dev-training-patchcore", 3)
    assert parse_version_id("isolation_forest/2", prefix) == ("ivadas-dev-training-isolation-forest", 2)
    assert parse_version_id("isolation-forest/2", prefix) == ("ivadas-dev-training-isolation-forest", 2)
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/ivadas-dev-training-lstm-ae/4"
    assert parse_version_id(arn, prefix) == ("ivadas-dev-training-lstm-ae", 4)
    with pytest.raises(RegistryError, match="is not a model version"):
        parse_version_id("patchcore", prefix)

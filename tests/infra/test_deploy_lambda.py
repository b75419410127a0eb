"""The deploy Lambda against moto: first approval creates, later approval updates blue/green,
rejecting the served version rolls back, other events are ignored."""

import json
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "deploy"))
import deploy_app  # noqa: E402

GROUP = "ivadas-dev-training-patchcore"
ALARMS = ["ivadas-dev-patchcore-5xx", "ivadas-dev-patchcore-model-latency"]


@pytest.fixture
def aws(monkeypatch):
    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "eu-west-1",
           "ENDPOINT_PREFIX": "ivadas-dev", "MODEL_PACKAGE_GROUP_PREFIX": "ivadas-dev-training",
           "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/model", "ROLLBACK_ALARMS": json.dumps({"patchcore": ALARMS}),
           "DATA_CAPTURE_URI": "s3://artifacts/data-capture",
           "ENDPOINT_INSTANCE_TYPE": "ml.c5.xlarge"}  # moto's list of instance types predates c6i
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        sagemaker = boto3.client("sagemaker")
        updates = []
        monkeypatch.setattr(sagemaker, "update_endpoint", lambda **request: updates.append(request) or {"EndpointArn": "arn"},
                            raising=False)  # moto does not implement UpdateEndpoint: record the request instead
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        yield sagemaker, boto3.client("application-autoscaling"), updates


def register(sagemaker, n: int) -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "123.dkr.ecr.eu-west-1.amazonaws.com/ivadas-endpoint:1",
                                                "ModelDataUrl": f"s3://artifacts/model-{n}.tar.gz"}],
                                "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
    )["ModelPackageArn"]


def set_status(sagemaker, arn: str, status: str) -> dict:
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
    return {"detail-type": "SageMaker Model Package State Change", "source": "aws.sagemaker",
            "detail": {"ModelPackageGroupName": GROUP, "ModelApprovalStatus": status, "ModelPackageArn": arn}}


def test_first_approval_creates_the_endpoint(aws):
    sagemaker, autoscaling, updates = aws
    arn = register(sagemaker, 1)
    result = deploy_app.reconcile(set_status(sagemaker, arn, "Approved"), sagemaker, autoscaling)
    assert result["action"] == "created" and result["model_package"] == arn
    endpoint = sagemaker.describe_endpoint(EndpointName="ivadas-dev-patchcore")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert config["DataCaptureConfig"]["DestinationS3Uri"] == "s3://artifacts/data-capture/patchcore"
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://artifacts/model-1.tar.gz"
    assert model["PrimaryContainer"]["Environment"]["IVADAS_MODEL_VERSION"] == f"{GROUP}/1"
    assert updates == []


def test_later_approval_updates_blue_green_with_rollback_alarms(aws):
    sagemaker, autoscaling, updates = aws
    first, second = register(sagemaker, 1), register(sagemaker, 2)
    deploy_app.reconcile(set_status(sagemaker, first, "Approved"), sagemaker, autoscaling)
    result = deploy_app.reconcile(set_status(sagemaker, second, "Approved"), sagemaker, autoscaling)
    assert result["action"] == "updated" and result["model_package"] == second
    [request] = updates
    assert request["EndpointName"] == "ivadas-dev-patchcore" and request["EndpointConfigName"].endswith("-v2")
    policy = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    assert request["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"] == [{"AlarmName": a} for a in ALARMS]


def test_rejecting_the_served_version_rolls_back_to_the_previous_approval(aws, monkeypatch):
    sagemaker, autoscaling, updates = aws
    first, second = register(sagemaker, 1), register(sagemaker, 2)
    deploy_app.reconcile(set_status(sagemaker, first, "Approved"), sagemaker, autoscaling)
    deploy_app.reconcile(set_status(sagemaker, second, "Approved"), sagemaker, autoscaling)
    # the endpoint now serves v2 (moto leaves it on the first config, so point it there as SageMaker would)
    monkeypatch.setattr(deploy_app, "current_package_arn", lambda client, endpoint: second)
    result = deploy_app.reconcile(set_status(sagemaker, second, "Rejected"), sagemaker, autoscaling)
    assert result["action"] == "rolled back" and result["model_package"] == first
    assert updates[-1]["EndpointConfigName"].endswith("-v1")


def test_other_events_are_ignored_and_nothing_approved_deploys_nothing(aws):
    sagemaker, autoscaling, updates = aws
    arn = register(sagemaker, 1)
    pending = deploy_app.reconcile({**set_status(sagemaker, arn, "PendingManualApproval")}, sagemaker, autoscaling)
    assert pending["action"] == "ignored"
    other_group = deploy_app.reconcile({"detail-type": "SageMaker Model Package State Change",
                                        "detail": {"ModelPackageGroupName": "someone-else", "ModelApprovalStatus": "Approved"}},
                                       sagemaker, autoscaling)
    assert other_group["action"] == "ignored"
    assert deploy_app.reconcile({"detail-type": "EC2 Instance State-change Notification", "detail": {}}, sagemaker, autoscaling)["action"] == "ignored"
    rejected = deploy_app.reconcile(set_status(sagemaker, arn, "Rejected"), sagemaker, autoscaling)
    assert rejected["action"] == "none" and "nothing is approved" in rejected["reason"]
    assert sagemaker.list_endpoints()["Endpoints"] == [] and updates == []


def test_endpoint_in_service_registers_autoscaling(aws):
    sagemaker, autoscaling, _ = aws
    result = deploy_app.reconcile({"detail-type": "SageMaker Endpoint State Change",
                                   "detail": {"EndpointName": "ivadas-dev-patchcore", "EndpointStatus": "IN_SERVICE"}},
                                  sagemaker, autoscaling)
    assert result["action"] == "autoscaling registered"
    [target] = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == "endpoint/ivadas-dev-patchcore/variant/AllTraffic" and target["MaxCapacity"] == 4

"""The strict fake refuses what SageMaker refuses, with SageMaker's error codes (moto accepts all of these)."""

import pytest

from tests.infra.strict_aws import PROVISION_SECONDS, StrictAws

ROLE = "arn:aws:iam::123456789012:role/model"


@pytest.fixture
def sagemaker():
    fake = StrictAws()
    client = fake.client("sagemaker")
    client.create_model(ModelName="m1", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "i", "ModelDataUrl": "s3://b/1.tar.gz"})
    for name, count in (("c1", 1), ("c2", 1), ("c3", 3)):
        client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "m1", "InitialInstanceCount": count, "InstanceType": "ml.c6i.xlarge"}])
    return fake, client


def refused(client, call, message: str, **request):
    with pytest.raises(client.exceptions.ClientError) as error:
        getattr(client, call)(**request)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert message in error.value.response["Error"]["Message"]


def test_existing_names_are_refused(sagemaker):
    fake, client = sagemaker
    refused(client, "create_model", "Cannot create already existing model", ModelName="m1", ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": "other", "ModelDataUrl": "s3://b/2.tar.gz"})
    refused(client, "create_endpoint_config", "Cannot create already existing endpoint configuration",
            EndpointConfigName="c1", ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "m1",
                                                          "InitialInstanceCount": 1, "InstanceType": "ml.c6i.xlarge"}])
    client.create_endpoint(EndpointName="e", EndpointConfigName="c1")
    refused(client, "create_endpoint", "Cannot create already existing endpoint", EndpointName="e", EndpointConfigName="c2")
    assert fake.models["m1"]["PrimaryContainer"]["Image"] == "i"  # nothing was overwritten


def test_an_endpoint_in_progress_can_be_neither_updated_nor_deleted(sagemaker):
    fake, client = sagemaker
    client.create_endpoint(EndpointName="e", EndpointConfigName="c1")
    refused(client, "update_endpoint", "Cannot update in-progress endpoint", EndpointName="e", EndpointConfigName="c2")
    refused(client, "delete_endpoint", "Cannot update in-progress endpoint", EndpointName="e")
    fake.advance(PROVISION_SECONDS)
    assert client.describe_endpoint(EndpointName="e")["EndpointStatus"] == "InService"
    client.update_endpoint(EndpointName="e", EndpointConfigName="c2")
    refused(client, "update_endpoint", "Cannot update in-progress endpoint", EndpointName="e", EndpointConfigName="c1")


@pytest.mark.parametrize("config, size, accepted", [
    ("c2", {"Type": "INSTANCE_COUNT", "Value": 1}, False),  # 1 of 1 instance
    ("c2", {"Type": "CAPACITY_PERCENT", "Value": 25}, False),  # a quarter of one instance is one instance
    ("c3", {"Type": "INSTANCE_COUNT", "Value": 2}, False),  # 2 of 3
    ("c3", {"Type": "INSTANCE_COUNT", "Value": 1}, True),
])
def test_a_canary_above_half_of_the_fleet_is_refused(sagemaker, config, size, accepted):
    fake, client = sagemaker
    client.create_endpoint(EndpointName="e", EndpointConfigName="c1")
    fake.advance(PROVISION_SECONDS)
    request = {"EndpointName": "e", "EndpointConfigName": config, "DeploymentConfig": {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 300, "CanarySize": size}}}}
    if accepted:
        client.update_endpoint(**request)
    else:
        refused(client, "update_endpoint", "less than or equal to 50%", **request)


def test_missing_resources_are_validation_errors(sagemaker):
    _, client = sagemaker
    refused(client, "describe_endpoint", 'Could not find endpoint "nope"', EndpointName="nope")
    refused(client, "describe_model", "Could not find model", ModelName="nope")
    refused(client, "describe_endpoint_config", "Could not find endpoint configuration", EndpointConfigName="nope")

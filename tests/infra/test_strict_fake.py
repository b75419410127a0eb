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


def test_tags_and_quotas_are_refused_as_sagemaker_refuses_them(sagemaker):
    fake, client = sagemaker
    fake.quotas["ml.c6i.xlarge"] = 2
    with pytest.raises(client.exceptions.ResourceLimitExceeded, match="'ml.c6i.xlarge for endpoint usage' is 2 Instances"):
        client.create_endpoint(EndpointName="big", EndpointConfigName="c3")
    client.create_endpoint(EndpointName="e", EndpointConfigName="c1")
    arn = client.describe_endpoint(EndpointName="e")["EndpointArn"]
    refused(client, "add_tags", "tag key and value constraints", ResourceArn=arn, Tags=[{"Key": "k", "Value": "a,b"}])
    refused(client, "add_tags", "tag key and value constraints", ResourceArn=arn, Tags=[{"Key": "k", "Value": "v" * 257}])
    client.add_tags(ResourceArn=arn, Tags=[{"Key": f"k{n}", "Value": "v"} for n in range(49)])  # 49 of the 50 allowed
    refused(client, "add_tags", "exceeded the number of tags", ResourceArn=arn, Tags=[{"Key": "k49", "Value": "v"},
                                                                                        {"Key": "k50", "Value": "v"}])


def test_a_deregistered_targets_scaling_policy_goes_with_it(sagemaker):
    fake, client = sagemaker
    client.create_endpoint(EndpointName="e", EndpointConfigName="c1")
    fake.advance(PROVISION_SECONDS)
    scaling = fake.client("application-autoscaling")
    target = {"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/e/variant/AllTraffic",
              "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}
    scaling.register_scalable_target(**target, MinCapacity=1, MaxCapacity=2)
    scaling.put_scaling_policy(**target, PolicyName="p", PolicyType="TargetTrackingScaling",
                               TargetTrackingScalingPolicyConfiguration={"TargetValue": 600.0})
    assert [p["PolicyName"] for p in scaling.describe_scaling_policies(**target)["ScalingPolicies"]] == ["p"]
    scaling.deregister_scalable_target(**target)
    scaling.register_scalable_target(**target, MinCapacity=1, MaxCapacity=2)
    assert scaling.describe_scaling_policies(**target)["ScalingPolicies"] == []

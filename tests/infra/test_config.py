"""Deployment settings (infra/aws/config.py), the endpoint volume key on local-NVMe instance types,
and the CDK feature flags of cdk.json."""

import json
import tarfile
from pathlib import Path
from types import SimpleNamespace

import aws_cdk
import pytest
from pydantic import ValidationError

from infra.app import FEATURE_FLAG_CHOICES, feature_flags
from infra.aws.config import IvadasConfig, has_local_nvme
from tests.infra.deployment_harness import World, hosted_on

GROUP = "ivadas-dev-training-patchcore"


def test_bad_settings_are_refused_with_a_reason():
    assert IvadasConfig(classes="a, b").classes == ("a", "b")
    for bad, message in (({"endpoint_instance_type": "c5.large"}, "real-time endpoints offer"),
                         ({"endpoint_instance_type": "ml.c5.huge"}, "real-time endpoints offer"),
                         ({"default_model": "yolo"}, "not a registered model kind"),
                         ({"alarm_email": "nobody"}, "not an e-mail address"),
                         ({"environment": "Prod!"}, "pattern"), ({"auroc_gate": 2}, "less than or equal"),
                         ({"endpoint_min_instances": 5, "endpoint_max_instances": 2}, "above endpointMaxInstances"),
                         ({"canary_wait_seconds": 3600, "bake_seconds": 3600}, "30 minutes for provisioning"),
                         ({"surprise": 1}, "Extra inputs")):
        with pytest.raises(ValidationError, match=message):
            IvadasConfig(**bad)
    assert IvadasConfig(default_model="isolation_forest").default_model == "isolation_forest"


def test_the_default_kind_of_each_modality_and_the_feed_settings():
    assert IvadasConfig().default_models == {"image": "patchcore", "sensors": "pca"}
    assert IvadasConfig(default_model="softpatch", default_sensor_model="conv_ae").default_models == {
        "image": "softpatch", "sensors": "conv_ae"}
    assert IvadasConfig(default_model="isolation_forest").default_models == {"image": "patchcore", "sensors": "isolation_forest"}
    for bad, message in (({"default_sensor_model": "patchcore"}, "not a sensor model kind"),
                         ({"default_model": "lstm_ae", "default_sensor_model": "pca"}, "name the sensor default once"),
                         ({"sensor_feed_rate_minutes": 0}, "greater than or equal to 1"),
                         ({"sensor_feed_rate_minutes": 61}, "less than or equal to 60"),
                         ({"sensor_feed_timeout_seconds": 30}, "greater than or equal to 60"),
                         ({"sensor_feed_timeout_seconds": 901}, "less than or equal to 900")):
        with pytest.raises(ValidationError, match=message):
            IvadasConfig(**bad)

    class Node:  # the CDK context, camelCase under ivadas:
        context = {"ivadas:sensorFeedRateMinutes": 15, "ivadas:sensorFeedEnabled": False, "ivadas:defaultSensorModel": "patchtst"}

        def try_get_context(self, key):
            return self.context.get(key)

    config = IvadasConfig.from_context(Node())
    assert (config.sensor_feed_rate_minutes, config.sensor_feed_enabled, config.default_models["sensors"]) == (15, False, "patchtst")


@pytest.mark.parametrize("instance_type, nvme", [
    ("ml.c6i.xlarge", False), ("ml.m5.xlarge", False), ("ml.c5.2xlarge", False), ("ml.inf2.xlarge", False),
    ("ml.g4dn.xlarge", True), ("ml.g5.2xlarge", True), ("ml.m5d.large", True), ("ml.c5d.xlarge", True),
    ("ml.r5d.large", True), ("ml.p4d.24xlarge", True), ("ml.c6gd.large", True), ("ml.g6e.xlarge", True),
])
def test_local_nvme_instance_types_take_no_volume_key(instance_type, nvme):
    assert has_local_nvme(instance_type) is nvme
    assert IvadasConfig(endpoint_instance_type=instance_type).endpoint_volume_kms_supported("patchcore") is not nvme


def serving_template(config: IvadasConfig) -> dict:
    """The Serving construct alone (storage real, container images stood in for), synthesized."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_ecr as ecr

    from infra.aws.constructs.serving import Serving
    from infra.aws.constructs.storage import Storage

    stack = Stack(App(), "ServingOnly", env=aws_cdk.Environment(account="123456789012", region="eu-west-1"))
    images = SimpleNamespace(endpoint=SimpleNamespace(repository=ecr.Repository(stack, "EndpointImages")))
    Serving(stack, "Serving", config=config, storage=Storage(stack, "Storage"), images=images, powertools_version=18)
    return aws_cdk.assertions.Template.from_stack(stack).to_json()


class _Context:
    """The CDK context, camelCase under ivadas:, as `-c` sets it (strings)."""

    def __init__(self, values: dict):
        self.values = values

    def try_get_context(self, key):
        return self.values.get(key)


def _deploy_environment(template: dict) -> dict:
    return next(r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
                and r["Properties"]["Handler"] == "deploy_app.handler")["Properties"]["Environment"]["Variables"]


def test_a_kind_can_have_an_instance_type_of_its_own(main_template_json, monkeypatch):
    """`endpointInstanceTypes`: a sensor kind on a small instance, an image kind on a local-NVMe one (which
    takes no volume key), the rest on the deployment's type with the key."""
    config = IvadasConfig.from_context(_Context({"ivadas:account": "123456789012",
                                                 "ivadas:endpointInstanceTypes": '{"pca": "ml.m5.large", "softpatch": "ml.g5.xlarge"}'}))
    assert config.endpoint_instance_type_of("pca") == "ml.m5.large" and config.endpoint_instance_type_of("patchcore") == "ml.c6i.xlarge"
    deploy = _deploy_environment(serving_template(config))
    targets = json.loads(deploy["DEPLOY_TARGETS"])
    assert (targets["pca"]["instance_type"], targets["pca"]["volume_key"]) == ("ml.m5.large", True)
    assert (targets["softpatch"]["instance_type"], targets["softpatch"]["volume_key"]) == ("ml.g5.xlarge", False)
    assert (targets["patchcore"]["instance_type"], targets["patchcore"]["volume_key"]) == ("ml.c6i.xlarge", True)
    assert "ENDPOINT_VOLUME_KMS_KEY_ID" in deploy  # the kinds that take it

    # the deploy Lambda: patchcore on a local-NVMe type while the key is there for the others
    world = World(main_template_json, monkeypatch, env=hosted_on(main_template_json, "ml.g5.2xlarge", volume_key=False,
                                                                 kinds=("patchcore",)))
    assert world.env["ENDPOINT_VOLUME_KMS_KEY_ID"]
    from pipelines.registry import APPROVED, SageMakerRegistry

    registry = SageMakerRegistry(client=world.console)
    registry.register(GROUP, "s3://artifacts/model-1.tar.gz", {}, {}, image_uri="ivadas-endpoint:1")
    registry.set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    world.settle()
    config = world.fake.configs[world.fake.endpoints["ivadas-dev-patchcore"]["EndpointConfigName"]]
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.g5.2xlarge" and "KmsKeyId" not in config
    assert world.app.settings().hosting_of("pca").volume_kms_key == world.env["ENDPOINT_VOLUME_KMS_KEY_ID"]


def test_a_kind_can_have_a_scaling_target_of_its_own():
    """`endpointInvocationsPerInstanceByKind`: the sensor kind's target, the others the deployment's."""
    config = IvadasConfig.from_context(_Context({"ivadas:account": "123456789012", "ivadas:endpointInvocationsPerInstance": 400,
                                                 "ivadas:endpointInvocationsPerInstanceByKind": '{"pca": 6000}'}))
    deploy = _deploy_environment(serving_template(config))
    targets = json.loads(deploy["DEPLOY_TARGETS"])
    assert (targets["pca"]["invocations_per_instance"], targets["patchcore"]["invocations_per_instance"]) == (6000, 400)
    assert deploy["TARGET_INVOCATIONS_PER_INSTANCE"] == "400"


@pytest.mark.parametrize("value, message", [
    ('{"resnet": "ml.m5.large"}', "'resnet' is not a model kind"),
    ('{"pca": "ml.m5.huge"}', "real-time endpoints offer"),
    ('["pca"]', "maps model kinds to instance types"),
    ("{pca: ml.m5.large}", "not JSON"),
    ('{"pca": ["ml.m5.large"]}', "needs an instance type like ml.m5.large"),
    ('{"pca": "ml.inf1.xlarge"}', "deployment guardrails exclude Inf1 endpoints"),
])
def test_a_wrong_instance_type_per_kind_stops_synth_with_the_reason(value, message):
    with pytest.raises(ValidationError, match=message):
        IvadasConfig.from_context(_Context({"ivadas:endpointInstanceTypes": value}))


@pytest.mark.parametrize("value, message", [
    ('{"resnet": 6000}', "'resnet' is not a model kind"),
    ('{"pca": 0}', "needs a whole number of invocations from 1 to 1000000, got 0"),
    ('{"pca": "6000"}', "needs a whole number"),
    ('{"pca": true}', "needs a whole number"),
    ("[6000]", "maps model kinds to invocations per instance"),
])
def test_a_wrong_scaling_target_per_kind_stops_synth_with_the_reason(value, message):
    with pytest.raises(ValidationError, match=message):
        IvadasConfig.from_context(_Context({"ivadas:endpointInvocationsPerInstanceByKind": value}))
    with pytest.raises(ValidationError, match="needs a whole number, got True"):
        IvadasConfig.from_context(_Context({"ivadas:endpointInvocationsPerInstance": True}))  # not 1 per minute


def test_the_volume_key_is_left_out_on_local_nvme_and_endpoints_still_come_up(main_template_json, monkeypatch):
    g5 = serving_template(IvadasConfig(account="123456789012", endpoint_instance_type="ml.g5.xlarge"))
    deploy = _deploy_environment(g5)
    targets = json.loads(deploy["DEPLOY_TARGETS"])
    assert {(t["instance_type"], t["volume_key"]) for t in targets.values()} == {("ml.g5.xlarge", False)}
    assert "ENDPOINT_VOLUME_KMS_KEY_ID" not in deploy
    assert "kms:CreateGrant" not in json.dumps(g5)  # nothing to grant: SageMaker encrypts NVMe in hardware
    assert "InspectionKey" in json.dumps(deploy["DATA_CAPTURE_KMS_KEY_ID"])  # captured requests: the inspection key still

    world = World(main_template_json, monkeypatch, env=hosted_on(main_template_json, "ml.g5.xlarge", volume_key=False))
    monkeypatch.delenv("ENDPOINT_VOLUME_KMS_KEY_ID")
    world.app.settings.cache_clear()
    from pipelines.registry import APPROVED, SageMakerRegistry

    registry = SageMakerRegistry(client=world.console)
    first = registry.register(GROUP, "s3://artifacts/model-1.tar.gz", {}, {}, image_uri="ivadas-endpoint:1")
    registry.set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    world.settle()
    assert world.endpoint_serves("ivadas-dev-patchcore") == first.arn
    config = world.fake.configs[world.fake.endpoints["ivadas-dev-patchcore"]["EndpointConfigName"]]
    assert "KmsKeyId" not in config and config["DataCaptureConfig"]["KmsKeyId"]


def test_the_strict_fake_refuses_a_volume_key_on_local_nvme(main_template_json, monkeypatch):
    """What the deployment would meet on AWS if the key were passed for a g5 (the fake is that strict)."""
    world = World(main_template_json, monkeypatch)
    sagemaker = world.console
    sagemaker.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                           PrimaryContainer={"Image": "i", "ModelDataUrl": "s3://b/m.tar.gz"})
    with pytest.raises(sagemaker.exceptions.ClientError, match="KmsKeyId is not supported"):
        sagemaker.create_endpoint_config(EndpointConfigName="c", KmsKeyId="arn:aws:kms:eu-west-1:123456789012:key/k",
                                         ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "m",
                                                              "InitialInstanceCount": 1, "InstanceType": "ml.g5.xlarge"}])


# ------------------------------------------------------------------------------ feature flags

def recommended_flags() -> dict:
    """aws-cdk-lib's own list of recommended feature flags, from the installed package (offline)."""
    tarball = next((Path(aws_cdk.__file__).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz"))
    with tarfile.open(tarball) as archive:
        return json.load(archive.extractfile("package/recommended-feature-flags.json"))


def test_cdk_json_sets_every_recommended_feature_flag_of_the_installed_cdk():
    recommended, ours = recommended_flags(), feature_flags()
    different = {flag: ours.get(flag) for flag, value in recommended.items() if ours.get(flag) != value}
    assert different == {flag: value for flag, (value, _) in FEATURE_FLAG_CHOICES.items()}
    for flag, (_, reason) in FEATURE_FLAG_CHOICES.items():
        assert flag in recommended and len(reason) >= 40, flag


def test_the_synthesized_app_runs_with_the_flags_of_cdk_json(synthesized):
    app = synthesized[0]
    for flag, value in feature_flags().items():
        assert app.node.try_get_context(flag) == value, flag

"""SageMaker hosting as the deploy Lambda drives it: models, endpoint configs, endpoints, auto-scaling.

Every step is idempotent. Models and endpoint configs are named after the endpoint, the package
version and a hash of what they hold, so a name that exists already holds exactly this content and
is reused: rolling back to an earlier version, re-approving one, or retrying after a partial failure
never asks SageMaker to create a name it has (which it refuses with a ValidationException).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from botocore.exceptions import ClientError

VARIANT = "AllTraffic"
#: Statuses in which SageMaker refuses UpdateEndpoint and DeleteEndpoint: wait for the next one.
BUSY = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
PACKAGE_TAG, DEPLOYING_TAG, KIND_TAG = "ivadas:model-package", "ivadas:deploying", "ivadas:model-kind"
#: The endpoint config of the deployment in progress, and the `move_key` of the last move of the serving
#: version onto another config of its own (a new capture key or instance type) that was rolled back.
DEPLOYING_CONFIG_TAG, ROLLED_BACK_MOVE_TAG = "ivadas:deploying-config", "ivadas:rolled-back-move"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# Limits of BlueGreenUpdatePolicy (UpdateEndpoint API reference).
MAX_WAIT_SECONDS, MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 3600, 600, 28800


class EndpointBusy(Exception):
    """The endpoint is being created, updated or deleted; the deployment waits its turn in the queue."""


@dataclass(frozen=True)
class Hosting:
    """How a kind's endpoint is hosted (from the deploy Lambda's environment, set by CDK from config)."""

    role_arn: str
    instance_type: str = "ml.c6i.xlarge"
    min_instances: int = 1
    max_instances: int = 4
    invocations_per_instance: float = 600.0
    capture_uri: str = ""
    capture_kms_key: str = ""
    volume_kms_key: str = ""  # empty for instance types with local NVMe storage (KmsKeyId is refused there)
    workers: str = "2"
    canary_percent: int = 25
    canary_wait_seconds: int = 300
    bake_seconds: int = 600
    deployment_timeout_seconds: int = 3600


# ------------------------------------------------------------------------------------------ errors

def error_code(exc) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def error_message(exc) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Message", "")


def is_not_found(exc) -> bool:
    return error_code(exc) in ("ValidationException", "ResourceNotFound") and "Could not find" in error_message(exc)


def is_already_existing(exc) -> bool:
    return error_code(exc) == "ValidationException" and "already existing" in error_message(exc)


def is_in_progress(exc) -> bool:
    return error_code(exc) == "ValidationException" and "in-progress" in error_message(exc)


# ------------------------------------------------------------------------------------------ reading

def describe_endpoint(sagemaker, name: str) -> dict | None:
    try:
        return sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def tags_of(sagemaker, arn: str) -> dict[str, str]:
    tags = {}
    for page in sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn):
        tags.update({t["Key"]: t["Value"] for t in page["Tags"]})
    return tags


def config_of(sagemaker, endpoint: dict) -> dict:
    return sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])


def serving_package_arn(sagemaker, endpoint: dict) -> str | None:
    """The model package the endpoint's current config was made from (None for a config IVADAS did not make)."""
    return tags_of(sagemaker, config_of(sagemaker, endpoint)["EndpointConfigArn"]).get(PACKAGE_TAG)


def deployment_tags(sagemaker, endpoint: dict) -> dict[str, str]:
    """The endpoint's tags: the package and config of the last deployment this Lambda started on it and
    has not seen finish (DEPLOYING_TAG, DEPLOYING_CONFIG_TAG), and ROLLED_BACK_MOVE_TAG."""
    return tags_of(sagemaker, endpoint["EndpointArn"])


def current_fleet(endpoint: dict) -> int:
    variants = endpoint.get("ProductionVariants") or [{}]
    return int(variants[0].get("DesiredInstanceCount") or variants[0].get("CurrentInstanceCount") or 0)


# ------------------------------------------------------------------------------------------ creating

def digest(content) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:8]


def versioned_name(endpoint: str, package: dict, content) -> str:
    return f"{endpoint}-v{package['ModelPackageVersion']}-{digest(content)}"


def model_request(h: Hosting, kind: str, endpoint: str, package: dict, metrics: str) -> dict:
    container = package["InferenceSpecification"]["Containers"][0]
    environment = {
        "IVADAS_MODEL_VERSION": f"{package['ModelPackageGroupName']}/{package['ModelPackageVersion']}",
        "SAGEMAKER_MODEL_SERVER_WORKERS": h.workers,
        "IVADAS_MODEL_KIND": kind,
    }
    identity = {"package": package["ModelPackageArn"], "image": container["Image"], "data": container["ModelDataUrl"],
                "role": h.role_arn, "environment": environment}
    if metrics:  # informative only: not part of the identity, a report read later must not make a new model
        environment = {**environment, "IVADAS_MODEL_METRICS": metrics}
    return {
        "ModelName": versioned_name(endpoint, package, identity), "ExecutionRoleArn": h.role_arn,
        "PrimaryContainer": {"Image": container["Image"], "ModelDataUrl": container["ModelDataUrl"], "Environment": environment},
        "Tags": [{"Key": PACKAGE_TAG, "Value": package["ModelPackageArn"]}, {"Key": KIND_TAG, "Value": kind}],
    }


def endpoint_config_request(h: Hosting, kind: str, endpoint: str, package: dict, model_name: str, fleet: int) -> dict:
    config = {
        "ProductionVariants": [{"VariantName": VARIANT, "ModelName": model_name, "InitialInstanceCount": fleet,
                                "InstanceType": h.instance_type}],
    }
    if h.capture_uri:
        config["DataCaptureConfig"] = {
            "EnableCapture": True, "InitialSamplingPercentage": 20, "DestinationS3Uri": f"{h.capture_uri.rstrip('/')}/{kind}",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            # sensor windows also arrive as CSV: captured as text, not base64, so monitoring can read them
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"], "CsvContentTypes": ["text/csv"]},
        }
        if h.capture_kms_key:
            config["DataCaptureConfig"]["KmsKeyId"] = h.capture_kms_key
    if h.volume_kms_key:
        config["KmsKeyId"] = h.volume_kms_key
    return {"EndpointConfigName": versioned_name(endpoint, package, config), **config,
            "Tags": [{"Key": PACKAGE_TAG, "Value": package["ModelPackageArn"]}, {"Key": KIND_TAG, "Value": kind}]}


def ensure_model(sagemaker, request: dict) -> str:
    return _ensure(sagemaker.describe_model, sagemaker.create_model, "ModelName", request)


def ensure_endpoint_config(sagemaker, request: dict) -> str:
    return _ensure(sagemaker.describe_endpoint_config, sagemaker.create_endpoint_config, "EndpointConfigName", request)


def _ensure(describe, create, key: str, request: dict) -> str:
    """Create unless it exists; the name is a content hash, so an existing one is this very content."""
    name = request[key]
    try:
        describe(**{key: name})
        return name
    except ClientError as exc:  # anything but "not found" is a real failure
        if not is_not_found(exc):
            raise
    try:
        create(**request)
    except ClientError as exc:
        if not is_already_existing(exc):  # created meanwhile by a concurrent attempt: same content
            raise
    return name


# ------------------------------------------------------------------------------------------ deploying

def fleet_size(h: Hosting, endpoint: dict | None) -> int:
    """The new fleet is as large as the current one (auto-scaling may have grown it), within the limits."""
    current = current_fleet(endpoint) if endpoint else 0
    return min(max(h.min_instances, current), h.max_instances)


def traffic_routing(h: Hosting, fleet: int) -> tuple[dict, int]:
    """(TrafficRoutingConfiguration, TerminationWaitInSeconds) for a green fleet of `fleet` instances.

    SageMaker refuses a canary above half of the fleet, so a canary needs two instances at least;
    one instance shifts all at once and bakes for the canary wait and the bake time together, the
    alarms watching it all along either way."""
    if fleet >= 2:
        canary = max(1, math.floor(fleet * h.canary_percent / 100))
        return ({"Type": "CANARY", "WaitIntervalInSeconds": min(h.canary_wait_seconds, MAX_WAIT_SECONDS),
                 "CanarySize": {"Type": "INSTANCE_COUNT", "Value": canary}}, min(h.bake_seconds, MAX_WAIT_SECONDS))
    return ({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},  # one step, so nothing to wait between steps
            min(h.canary_wait_seconds + h.bake_seconds, MAX_WAIT_SECONDS))


def blue_green_request(h: Hosting, endpoint: str, config_name: str, fleet: int, alarms: list[str]) -> dict:
    """UpdateEndpoint: blue/green, rolled back automatically when one of the alarms fires."""
    routing, termination_wait = traffic_routing(h, fleet)
    timeout = min(max(h.deployment_timeout_seconds, MIN_TIMEOUT_SECONDS), MAX_TIMEOUT_SECONDS)
    deployment = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": termination_wait,
                                            "MaximumExecutionTimeoutInSeconds": timeout}}
    if alarms:
        deployment["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in alarms]}
    return {"EndpointName": endpoint, "EndpointConfigName": config_name, "RetainAllVariantProperties": False,
            "DeploymentConfig": deployment}


def create_endpoint(sagemaker, endpoint: str, config_name: str, kind: str, package_arn: str) -> None:
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name,
                              Tags=[{"Key": KIND_TAG, "Value": kind}, {"Key": DEPLOYING_TAG, "Value": package_arn}])


def update_endpoint(sagemaker, request: dict, endpoint_arn: str, package_arn: str) -> None:
    try:
        sagemaker.update_endpoint(**request)
    except ClientError as exc:
        if is_in_progress(exc):  # it became busy since it was described
            raise EndpointBusy(error_message(exc)) from None
        raise
    # Recorded only once SageMaker accepted the update: an endpoint back in service on another
    # version or config than these tags name was rolled back.
    sagemaker.add_tags(ResourceArn=endpoint_arn, Tags=[{"Key": DEPLOYING_TAG, "Value": package_arn},
                                                       {"Key": DEPLOYING_CONFIG_TAG, "Value": request["EndpointConfigName"]}])


def clear_deploying(sagemaker, endpoint: dict) -> None:
    sagemaker.delete_tags(ResourceArn=endpoint["EndpointArn"], TagKeys=[DEPLOYING_TAG, DEPLOYING_CONFIG_TAG])


def move_key(config: dict) -> str:
    """What a move to `config` (a CreateEndpointConfig request or a described config) changes: model,
    instance type and keys, not the fleet size, which auto-scaling changes on its own; a move that was
    rolled back is not tried again only because the fleet has grown since."""
    variant = config["ProductionVariants"][0]
    return digest([variant["ModelName"], variant["InstanceType"],
                   (config.get("DataCaptureConfig") or {}).get("KmsKeyId", ""), config.get("KmsKeyId", "")])


def record_rolled_back_move(sagemaker, endpoint: dict, config_name: str) -> str:
    """Remember the move to `config_name` as rolled back (its `move_key`, which the call returns)."""
    key = move_key(sagemaker.describe_endpoint_config(EndpointConfigName=config_name))
    sagemaker.add_tags(ResourceArn=endpoint["EndpointArn"], Tags=[{"Key": ROLLED_BACK_MOVE_TAG, "Value": key}])
    return key


def instance_type_changes(current: dict, h: Hosting) -> bool:
    """Whether the endpoint's config (`current`, as described) is on another instance type than `h`."""
    return any(v.get("InstanceType") != h.instance_type for v in current["ProductionVariants"])


def capture_key_changes(current: dict, h: Hosting) -> bool:
    """Whether the endpoint's data capture is written with another key than the deployment names
    (an endpoint deployed before the key changed): the artifacts bucket refuses captured requests
    under any key but the inspection key, so such an endpoint's capture would be lost."""
    if not h.capture_uri:
        return False
    return (current.get("DataCaptureConfig") or {}).get("KmsKeyId", "") != h.capture_kms_key


def hosting_move(current: dict, h: Hosting) -> str | None:
    """Why the served version should move from its config (`current`, as described) to another config of
    the same version (None: no reason)."""
    if capture_key_changes(current, h):
        return "the data capture key changed"
    if instance_type_changes(current, h):
        return f"the kind is hosted on {h.instance_type} now"
    return None


# ------------------------------------------------------------------------------------------ auto-scaling

def resource_id(endpoint: str) -> str:
    return f"endpoint/{endpoint}/variant/{VARIANT}"


def scalable_target(autoscaling, endpoint: str) -> dict | None:
    targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource_id(endpoint)],
                                                    ScalableDimension=SCALABLE_DIMENSION)["ScalableTargets"]
    return targets[0] if targets else None


def policy_name(endpoint: str) -> str:
    return f"{endpoint}-invocations"


def scaling_target_value(autoscaling, endpoint: str) -> float | None:
    """The invocations per instance the endpoint's target-tracking policy holds (None: no policy)."""
    policies = autoscaling.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=resource_id(endpoint), ScalableDimension=SCALABLE_DIMENSION,
        PolicyNames=[policy_name(endpoint)])["ScalingPolicies"]
    return policies[0].get("TargetTrackingScalingPolicyConfiguration", {}).get("TargetValue") if policies else None


def ensure_autoscaling(autoscaling, h: Hosting, endpoint: str) -> bool:
    """Target tracking on invocations per instance, with the deployment's limits and target; True when
    it had to be (re)registered or its target changed."""
    target = scalable_target(autoscaling, endpoint)
    register = not (target and (target["MinCapacity"], target["MaxCapacity"]) == (h.min_instances, h.max_instances))
    if not register and scaling_target_value(autoscaling, endpoint) == h.invocations_per_instance:
        return False
    if register:
        autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource_id(endpoint),
                                             ScalableDimension=SCALABLE_DIMENSION, MinCapacity=h.min_instances,
                                             MaxCapacity=h.max_instances)
    autoscaling.put_scaling_policy(
        PolicyName=policy_name(endpoint), ServiceNamespace="sagemaker", ResourceId=resource_id(endpoint),
        ScalableDimension=SCALABLE_DIMENSION, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": h.invocations_per_instance,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": 300, "ScaleOutCooldown": 60,
        },
    )
    return True


def deregister_autoscaling(autoscaling, endpoint: str) -> bool:
    """Deregistering deletes the target's scaling policies too (Application Auto Scaling API)."""
    if scalable_target(autoscaling, endpoint) is None:
        return False
    autoscaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource_id(endpoint),
                                           ScalableDimension=SCALABLE_DIMENSION)
    return True


# ------------------------------------------------------------------------------------------ metrics for GET /models

def evaluation_summary(package: dict, s3, log) -> str:
    """Compact metrics from the package's evaluation.json, for `GET /models` (env values ≤ 1024 chars)."""
    uri = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri", "")
    if not uri.startswith("s3://"):
        return ""
    try:
        bucket, key = uri[5:].split("/", 1)
        report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception:  # metrics are informative: a missing report must not block a deployment
        log.exception("evaluation report unavailable", extra={"uri": uri})
        return ""
    keys = sorted(k for k, v in report.get("mean", {}).items() if v is None or isinstance(v, (int, float)))
    summary = {"mean": {k: report.get("mean", {}).get(k) for k in keys},
               "classes": {name: {k: m.get(k) for k in keys} for name, m in report.get("classes", {}).items()}}
    text = json.dumps(summary, separators=(",", ":"))
    return text if len(text) <= 1024 else json.dumps({"mean": summary["mean"]}, separators=(",", ":"))

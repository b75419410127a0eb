"""Registry approval → endpoint: keeps each model kind's real-time endpoint on its served version.

Triggered by EventBridge "SageMaker Model Package State Change" events for the IVADAS model package
groups. The served version of a group is the most recently approved one still approved:
- no endpoint yet and a version is approved → create model, endpoint config, endpoint;
- otherwise → update the endpoint with a blue/green deployment that rolls back automatically on
  the endpoint's CloudWatch alarms (5xx, model latency);
- "SageMaker Endpoint State Change" to InService → register target-tracking auto-scaling;
- the served version rejected → redeploy the previous approved one (or leave the endpoint alone
  and say so if none is left); any other event → ignored.
"""

from __future__ import annotations

import json
import os
import re

import boto3
from aws_lambda_powertools import Logger

logger = Logger(service="ivadas-deploy")

APPROVED, REJECTED = "Approved", "Rejected"


def settings() -> dict:
    return {
        "endpoint_prefix": os.environ.get("ENDPOINT_PREFIX", "ivadas"),
        "group_prefix": os.environ.get("MODEL_PACKAGE_GROUP_PREFIX", "ivadas-training"),
        "role_arn": os.environ["SAGEMAKER_ROLE_ARN"],
        "instance_type": os.environ.get("ENDPOINT_INSTANCE_TYPE", "ml.c6i.xlarge"),
        "instance_count": int(os.environ.get("ENDPOINT_INSTANCE_COUNT", "1")),
        "max_instances": int(os.environ.get("ENDPOINT_MAX_INSTANCES", "4")),
        "invocations_per_instance": float(os.environ.get("TARGET_INVOCATIONS_PER_INSTANCE", "600")),
        "capture_uri": os.environ.get("DATA_CAPTURE_URI", ""),
        "kms_key": os.environ.get("KMS_KEY_ID", ""),
        "alarm_names": json.loads(os.environ.get("ROLLBACK_ALARMS", "{}")),  # kind → [alarm names]
        "workers": os.environ.get("ENDPOINT_WORKERS", "2"),
    }


def kind_of(group: str, group_prefix: str) -> str | None:
    match = re.fullmatch(re.escape(group_prefix) + r"-(patchcore|softpatch)", group)
    return match.group(1) if match else None


def served_package(sagemaker, group: str) -> dict | None:
    """Latest approved package by approval time (LastModifiedTime of an approved package)."""
    packages = []
    for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group, ModelApprovalStatus=APPROVED):
        packages += page["ModelPackageSummaryList"]
    if not packages:
        return None
    described = [sagemaker.describe_model_package(ModelPackageName=p["ModelPackageArn"]) for p in packages]
    return max(described, key=lambda p: (p.get("LastModifiedTime") or p["CreationTime"], p["ModelPackageVersion"]))


def endpoint_exists(sagemaker, name: str) -> dict | None:
    try:
        return sagemaker.describe_endpoint(EndpointName=name)
    except sagemaker.exceptions.ClientError as exc:
        if "Could not find" in str(exc) or "does not exist" in str(exc) or "not found" in str(exc).lower():
            return None
        raise


def resource_name(endpoint: str, package: dict) -> str:
    return f"{endpoint}-v{package['ModelPackageVersion']}"[:63]


def evaluation_summary(package: dict, s3=None) -> str:
    """Compact metrics from the package's evaluation.json, for `GET /models` (env values ≤ 1024 chars)."""
    uri = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri", "")
    if not uri.startswith("s3://"):
        return ""
    try:
        bucket, key = uri[5:].split("/", 1)
        report = json.loads((s3 or boto3.client("s3")).get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception:  # metrics are informative: a missing report must not block a deployment
        logger.exception("evaluation report unavailable", extra={"uri": uri})
        return ""
    keys = ("image_auroc", "pixel_auroc", "aupro", "f1")
    summary = {"mean": {k: report.get("mean", {}).get(k) for k in keys},
               "classes": {name: {k: m.get(k) for k in keys} for name, m in report.get("classes", {}).items()}}
    text = json.dumps(summary, separators=(",", ":"))
    return text if len(text) <= 1024 else json.dumps({"mean": summary["mean"]}, separators=(",", ":"))


def create_model_and_config(sagemaker, s: dict, kind: str, endpoint: str, package: dict, s3=None) -> str:
    name = resource_name(endpoint, package)
    container = package["InferenceSpecification"]["Containers"][0]
    metrics = evaluation_summary(package, s3)
    environment = {
        "IVADAS_MODEL_VERSION": f"{package['ModelPackageGroupName']}/{package['ModelPackageVersion']}",
        "SAGEMAKER_MODEL_SERVER_WORKERS": s["workers"],
        "IVADAS_MODEL_KIND": kind,
    }
    if metrics:
        environment["IVADAS_MODEL_METRICS"] = metrics
    sagemaker.create_model(
        ModelName=name, ExecutionRoleArn=s["role_arn"],
        PrimaryContainer={"Image": container["Image"], "ModelDataUrl": container["ModelDataUrl"], "Environment": environment},
        Tags=[{"Key": "ivadas:model-package", "Value": package["ModelPackageArn"]}],
    )
    config = {
        "EndpointConfigName": name,
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": s["instance_count"],
                                "InstanceType": s["instance_type"]}],
    }
    if s["capture_uri"]:
        config["DataCaptureConfig"] = {
            "EnableCapture": True, "InitialSamplingPercentage": 20, "DestinationS3Uri": f"{s['capture_uri'].rstrip('/')}/{kind}",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        }
        if s["kms_key"]:
            config["DataCaptureConfig"]["KmsKeyId"] = s["kms_key"]
    if s["kms_key"]:
        config["KmsKeyId"] = s["kms_key"]
    sagemaker.create_endpoint_config(**config)
    return name


def blue_green_request(endpoint: str, config_name: str, alarms: list[str]) -> dict:
    """UpdateEndpoint with a canary blue/green shift and automatic rollback on the alarms."""
    return {
        "EndpointName": endpoint,
        "EndpointConfigName": config_name,
        "RetainAllVariantProperties": False,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 300,
                                                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25}},
                "TerminationWaitInSeconds": 300,
                "MaximumExecutionTimeoutInSeconds": 3600,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarms]},
        },
    }


def register_autoscaling(autoscaling, s: dict, endpoint: str) -> None:
    resource = f"endpoint/{endpoint}/variant/AllTraffic"
    autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                         ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                         MinCapacity=s["instance_count"], MaxCapacity=s["max_instances"])
    autoscaling.put_scaling_policy(
        PolicyName=f"{endpoint}-invocations", ServiceNamespace="sagemaker", ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": s["invocations_per_instance"],
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": 300, "ScaleOutCooldown": 60,
        },
    )


def on_endpoint_in_service(detail: dict, s: dict, autoscaling=None) -> dict:
    name = detail.get("EndpointName", "")
    if detail.get("EndpointStatus") != "IN_SERVICE" or not re.fullmatch(re.escape(s["endpoint_prefix"]) + r"-(patchcore|softpatch)", name):
        return {"action": "ignored", "reason": f"endpoint {name!r} {detail.get('EndpointStatus')}"}
    register_autoscaling(autoscaling or boto3.client("application-autoscaling"), s, name)
    return {"action": "autoscaling registered", "endpoint": name}


def current_package_arn(sagemaker, endpoint: dict) -> str | None:
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model_name = config["ProductionVariants"][0]["ModelName"]
    tags = sagemaker.list_tags(ResourceArn=sagemaker.describe_model(ModelName=model_name)["ModelArn"]).get("Tags", [])
    return next((t["Value"] for t in tags if t["Key"] == "ivadas:model-package"), None)


def reconcile(event: dict, sagemaker=None, autoscaling=None, s3=None) -> dict:
    """Bring the endpoint of the event's model kind to the served version; returns what it did."""
    s = settings()
    detail = event.get("detail", {})
    if event.get("detail-type") == "SageMaker Endpoint State Change":
        return on_endpoint_in_service(detail, s, autoscaling)
    if event.get("detail-type") != "SageMaker Model Package State Change":
        return {"action": "ignored", "reason": "not a model package state change"}
    status = detail.get("ModelApprovalStatus")
    group = detail.get("ModelPackageGroupName", "")
    kind = kind_of(group, s["group_prefix"])
    if kind is None or status not in (APPROVED, REJECTED):
        return {"action": "ignored", "reason": f"status {status} of group {group!r} does not change what is served"}
    sagemaker = sagemaker or boto3.client("sagemaker")
    autoscaling = autoscaling or boto3.client("application-autoscaling")
    endpoint_name = f"{s['endpoint_prefix']}-{kind}"
    package = served_package(sagemaker, group)
    existing = endpoint_exists(sagemaker, endpoint_name)
    if package is None:
        reason = "no approved version is left" if existing else "nothing is approved yet"
        logger.warning(reason, extra={"group": group, "endpoint": endpoint_name})
        return {"action": "none", "reason": reason, "endpoint": endpoint_name}
    if existing and current_package_arn(sagemaker, existing) == package["ModelPackageArn"]:
        return {"action": "none", "reason": "the endpoint already serves the served version", "endpoint": endpoint_name}
    config_name = create_model_and_config(sagemaker, s, kind, endpoint_name, package, s3)
    if existing is None:
        # auto-scaling is registered when the endpoint reports InService (a later event)
        sagemaker.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name,
                                  Tags=[{"Key": "ivadas:model-kind", "Value": kind}])
        action = "created"
    else:
        sagemaker.update_endpoint(**blue_green_request(endpoint_name, config_name, s["alarm_names"].get(kind, [])))
        action = "rolled back" if status == REJECTED else "updated"
    result = {"action": action, "endpoint": endpoint_name, "model_package": package["ModelPackageArn"], "config": config_name}
    logger.info("endpoint reconciled", extra=result)
    return result


@logger.inject_lambda_context
def handler(event, context):
    return reconcile(event)

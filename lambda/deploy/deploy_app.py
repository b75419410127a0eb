"""Registry → endpoint: keeps each model kind's real-time endpoint on the version the registry serves.

Triggers reach this function through one SQS FIFO queue whose message group is the model kind, so
a kind's deployments run one after another and never race, while kinds proceed in parallel:
- "SageMaker Model Package State Change" of a kind's package group (approvals and rejections);
- "SageMaker Endpoint State Change" of a kind's endpoint (back in service, failed);
- a schedule ("IVADAS Reconcile") that compares registry and endpoint when no event came.

Whatever the trigger, the served version (latest approval record, `approvals.py`) is compared with
what the endpoint serves:
- the endpoint is busy (creating, updating, rolling back): the message returns to the queue and is
  retried until the endpoint is in service again (after enough failed tries it lands in the
  dead-letter queue, which has an alarm);
- the last deployment did not end on its version (SageMaker rolled it back on an alarm, or the
  update failed): that version is rejected in the registry with the reason, so registry and endpoint
  agree again, and `DeploymentRolledBack` is counted (alarm);
- a failed endpoint: its version is rejected likewise (`DeploymentFailed`) and the endpoint deleted;
- nothing approved (the only approved version was rejected): the endpoint is deleted, so nothing
  serves a version the registry refused; `/predict` answers 503 `model_not_deployed` until an approval;
- no endpoint: create it; another version: blue/green update with automatic rollback on the
  endpoint's alarms (canary with two instances or more, all at once with a bake time on one);
- in sync, but the deployment now names another config for that version (another data capture key,
  another instance type for the kind): blue/green onto it, once; if SageMaker rolls that move back, the
  version keeps serving on its former config and the move is not tried again until what it would
  move to changes, fleet size aside (`DeploymentRolledBack`, version not rejected);
- in sync: make sure auto-scaling is registered with the deployment's limits and target (it is
  deregistered before an instance-type change).
Every pass emits `ServedVersionMismatch` (1 while registry and endpoint disagree); an alarm fires
when they disagree for longer than a deployment takes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from botocore.exceptions import ClientError
from pydantic import BaseModel, TypeAdapter

import approvals
import endpoints
from endpoints import BUSY, EndpointBusy, Hosting

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ivadas-deploy")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "IVADAS")
logger = Logger(service=SERVICE)

PACKAGE_EVENT, ENDPOINT_EVENT, RECONCILE_EVENT = (
    "SageMaker Model Package State Change", "SageMaker Endpoint State Change", "IVADAS Reconcile")
#: Endpoint statuses no deployment can change; an operator has to look (the message ends in the DLQ).
NEEDS_OPERATOR = frozenset({"UpdateRollbackFailed"})


class DeploymentNeedsOperator(Exception):
    """The endpoint is in a state this function must not resolve on its own."""


class Target(BaseModel):
    """One model kind's registry group, endpoint and the alarms that roll its deployments back."""

    group: str
    endpoint: str
    alarms: list[str] = []
    #: the kind's instance type (endpointInstanceTypes, else endpointInstanceType); None: ENDPOINT_INSTANCE_TYPE's
    instance_type: str | None = None
    #: whether that type takes a KMS key for its volume (not on local NVMe); None: wherever the key is given
    volume_key: bool | None = None
    #: auto-scaling's target of invocations per instance and minute; None: TARGET_INVOCATIONS_PER_INSTANCE's
    invocations_per_instance: float | None = None


@dataclass(frozen=True)
class Settings:
    targets: dict[str, Target]
    hosting: Hosting

    def hosting_of(self, kind: str) -> Hosting:
        """How `kind` is hosted: its instance type, with the volume key only where that type takes one, and
        its auto-scaling target."""
        target = self.targets[kind]
        return replace(self.hosting, instance_type=target.instance_type or self.hosting.instance_type,
                       volume_kms_key="" if target.volume_key is False else self.hosting.volume_kms_key,
                       invocations_per_instance=target.invocations_per_instance or self.hosting.invocations_per_instance)

    def kind_of_group(self, group: str) -> str | None:
        return next((kind for kind, t in self.targets.items() if t.group == group), None)

    def kind_of_endpoint(self, name: str) -> str | None:
        return next((kind for kind, t in self.targets.items() if t.endpoint == name), None)


@lru_cache(maxsize=1)
def settings() -> Settings:
    env = os.environ
    hosting = Hosting(
        role_arn=env["SAGEMAKER_ROLE_ARN"], instance_type=env.get("ENDPOINT_INSTANCE_TYPE", "ml.c6i.xlarge"),
        min_instances=int(env.get("ENDPOINT_MIN_INSTANCES", "1")), max_instances=int(env.get("ENDPOINT_MAX_INSTANCES", "4")),
        invocations_per_instance=float(env.get("TARGET_INVOCATIONS_PER_INSTANCE", "600")),
        capture_uri=env.get("DATA_CAPTURE_URI", ""), capture_kms_key=env.get("DATA_CAPTURE_KMS_KEY_ID", ""),
        volume_kms_key=env.get("ENDPOINT_VOLUME_KMS_KEY_ID", ""), workers=env.get("ENDPOINT_WORKERS", "2"),
        canary_percent=int(env.get("CANARY_PERCENT", "25")), canary_wait_seconds=int(env.get("CANARY_WAIT_SECONDS", "300")),
        bake_seconds=int(env.get("BAKE_SECONDS", "600")),
        deployment_timeout_seconds=int(env.get("DEPLOYMENT_TIMEOUT_SECONDS", "3600")),
    )
    targets = TypeAdapter(dict[str, Target]).validate_json(env.get("DEPLOY_TARGETS", "{}"))
    return Settings(targets, hosting)


@dataclass
class Clients:
    sagemaker: object = field(default_factory=lambda: boto3.client("sagemaker"))
    autoscaling: object = field(default_factory=lambda: boto3.client("application-autoscaling"))
    cloudwatch: object = field(default_factory=lambda: boto3.client("cloudwatch"))
    s3: object = field(default_factory=lambda: boto3.client("s3"))


_clients: Clients | None = None


def clients() -> Clients:
    """The AWS clients, made once per Lambda container."""
    global _clients
    if _clients is None:
        _clients = Clients()
    return _clients


def count(name: str, value: float, kind: str, **metadata) -> None:
    """One CloudWatch metric in embedded format; the kind and details ride along as metadata."""
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
        for key, item in {"kind": kind, **metadata}.items():
            metric.add_metadata(key=key, value=item)


# ------------------------------------------------------------------------------------------ events

def kind_of_event(event: dict, s: Settings) -> str | None:
    detail = event.get("detail") or {}
    kind_by_type = {
        PACKAGE_EVENT: lambda: s.kind_of_group(detail.get("ModelPackageGroupName", "")),
        ENDPOINT_EVENT: lambda: s.kind_of_endpoint(detail.get("EndpointName", "")),
        RECONCILE_EVENT: lambda: detail.get("kind") if detail.get("kind") in s.targets else None,
    }
    find = kind_by_type.get(event.get("detail-type"))
    return find() if find else None


def handle_event(event: dict, aws: Clients | None = None) -> dict:
    """Bring the endpoint of the event's model kind to the registry's served version."""
    s = settings()
    kind = kind_of_event(event, s)
    if kind is None:
        return {"action": "ignored", "reason": f"{event.get('detail-type')!r} is not about an IVADAS model kind"}
    aws = aws or clients()
    detail = event.get("detail") or {}
    if event.get("detail-type") == PACKAGE_EVENT and detail.get("ModelApprovalStatus") == approvals.APPROVED:
        approvals.record_outside_approval(aws.sagemaker, detail["ModelPackageArn"], event.get("time"))
    result = reconcile(kind, aws, s)
    logger.info("reconciled", extra=result)
    return result


# ------------------------------------------------------------------------------------------ reconciling

def reconcile(kind: str, c: Clients, s: Settings) -> dict:
    target = s.targets[kind]
    endpoint = endpoints.describe_endpoint(c.sagemaker, target.endpoint)
    status = endpoint["EndpointStatus"] if endpoint else None
    if status in BUSY or status == "OutOfService":
        compare(kind, target, endpoint, c)
        raise EndpointBusy(f"{target.endpoint} is {status}; the deployment waits until it is in service")
    if status in NEEDS_OPERATOR:
        compare(kind, target, endpoint, c)
        raise DeploymentNeedsOperator(f"{target.endpoint} is {status}: {endpoint.get('FailureReason', 'no reason given')}")
    if status == "Failed":
        return remove_failed_endpoint(kind, target, endpoint, c)
    result = {"kind": kind, "endpoint": target.endpoint, **(settle_last_deployment(kind, target, endpoint, c) if endpoint else {})}
    desired, serving = compare(kind, target, endpoint, c)
    if desired is None:
        return {**result, **stop_serving(target, endpoint, c)}
    result["served_version"] = approvals.version_id(desired)
    if endpoint is not None and serving == desired["ModelPackageArn"]:
        return {**result, **keep_or_move(kind, target, endpoint, desired, c, s, result.get("rolled_back_move"))}
    return {**result, **deploy(kind, target, endpoint, desired, c, s)}


def keep_or_move(kind: str, target: Target, endpoint: dict, package: dict, c: Clients, s: Settings,
                 just_rolled_back: str | None = None) -> dict:
    """The endpoint serves the served version. Move it to the config of that version the deployment names
    now (a new data capture key, another instance type for the kind), unless that very move was rolled
    back already (`just_rolled_back` in this pass, or an earlier one): SageMaker returns a failed move to
    the former config of the same version, and moving again at every pass would loop, with auto-scaling
    deregistered for a type change."""
    h = s.hosting_of(kind)
    why = endpoints.hosting_move(endpoints.config_of(c.sagemaker, endpoint), h)
    if why:
        request = prepare(kind, target, endpoint, package, c, s)
        rolled_back = {just_rolled_back, endpoints.deployment_tags(c.sagemaker, endpoint).get(endpoints.ROLLED_BACK_MOVE_TAG)}
        if request["EndpointConfigName"] == endpoint["EndpointConfigName"]:
            why = f"{why}, but the endpoint is on the config the deployment names already"  # nothing would change
            logger.error("move to the same config skipped", extra={"kind": kind, "reason": why})
        elif endpoints.move_key(request) not in rolled_back:
            return {**deploy(kind, target, endpoint, package, c, s, request), "reason": why}
        else:
            why = (f"{why}, but this move was rolled back: it is tried again when what it moves to changes (a new "
                   f"version, instance type or key) or once the endpoint's {endpoints.ROLLED_BACK_MOVE_TAG} tag is deleted")
            logger.warning("move not tried again", extra={"kind": kind, "reason": why})
    registered = endpoints.ensure_autoscaling(c.autoscaling, h, target.endpoint)
    return {"action": "none", "reason": (why or "the endpoint serves the served version")
            + ("; auto-scaling registered or its target updated" if registered else "")}


def compare(kind: str, target: Target, endpoint: dict | None, c: Clients) -> tuple[dict | None, str | None]:
    """(the registry's served package, the package the endpoint serves); counts whether they differ."""
    desired = approvals.served_package(c.sagemaker, target.group)
    serving = endpoints.serving_package_arn(c.sagemaker, endpoint) if endpoint else None
    count("ServedVersionMismatch", int((desired or {}).get("ModelPackageArn") != serving), kind)
    return desired, serving


def settle_last_deployment(kind: str, target: Target, endpoint: dict, c: Clients) -> dict:
    """Compare the endpoint, back in service, with the deployment this function last started on it.

    A different version than the one deployed means SageMaker rolled the deployment back (an alarm
    fired during the canary or bake time, or the new fleet failed): the version is rejected with the
    reason, so the registry serves again what the endpoint serves."""
    tags = endpoints.deployment_tags(c.sagemaker, endpoint)
    deploying, config = tags.get(endpoints.DEPLOYING_TAG), tags.get(endpoints.DEPLOYING_CONFIG_TAG)
    if deploying is None:
        return {}
    serving = endpoints.serving_package_arn(c.sagemaker, endpoint)
    outcome = {}
    if serving is not None and serving != deploying:
        reason = rollback_reason(target, endpoint, c)
        rejected = approvals.reject_after_failed_deployment(c.sagemaker, deploying, reason)
        count("DeploymentRolledBack", 1, kind, package=deploying, reason=reason)
        logger.error("deployment rolled back", extra={"kind": kind, "package": deploying, "reason": reason,
                                                      "rejected_in_registry": rejected})
        outcome = {"rolled_back": deploying, "rollback_reason": reason}
    elif serving == deploying and config and endpoint["EndpointConfigName"] != config:
        # the version's move to another config of its own failed: it serves on, from its former config
        reason = rollback_reason(target, endpoint, c)
        key = endpoints.record_rolled_back_move(c.sagemaker, endpoint, config)
        count("DeploymentRolledBack", 1, kind, package=deploying, config=config, reason=reason)
        logger.error("move to another config rolled back", extra={"kind": kind, "package": deploying,
                                                                   "config": config, "reason": reason})
        outcome = {"rolled_back_config": config, "rolled_back_move": key, "rollback_reason": reason}
    endpoints.clear_deploying(c.sagemaker, endpoint)  # after the registry was told: a retry repeats nothing
    return outcome


def rollback_reason(target: Target, endpoint: dict, c: Clients) -> str:
    firing = []
    if target.alarms:
        alarms = c.cloudwatch.describe_alarms(AlarmNames=target.alarms, StateValue="ALARM")["MetricAlarms"]
        firing = [a["AlarmName"] for a in alarms]
    cause = (f"alarm {', '.join(firing)} fired during the blue/green deployment" if firing
             else endpoint.get("FailureReason") or "the blue/green deployment did not complete")
    return f"automatic rollback of {target.endpoint}: {cause}"


def remove_failed_endpoint(kind: str, target: Target, endpoint: dict, c: Clients) -> dict:
    """An endpoint that failed to come up serves nothing: reject its version, delete it, start again."""
    package = endpoints.serving_package_arn(c.sagemaker, endpoint)
    reason = f"{target.endpoint} failed to come up: {endpoint.get('FailureReason') or 'no reason given'}"
    if package:
        approvals.reject_after_failed_deployment(c.sagemaker, package, reason)
    count("DeploymentFailed", 1, kind, package=package or "", reason=reason)
    endpoints.deregister_autoscaling(c.autoscaling, target.endpoint)
    c.sagemaker.delete_endpoint(EndpointName=target.endpoint)
    logger.error("endpoint failed and was deleted", extra={"kind": kind, "package": package, "reason": reason})
    return {"kind": kind, "endpoint": target.endpoint, "action": "deleted failed endpoint", "reason": reason,
            "rejected": package}


def stop_serving(target: Target, endpoint: dict | None, c: Clients) -> dict:
    if endpoint is None:
        return {"action": "none", "reason": "nothing is approved yet"}
    endpoints.deregister_autoscaling(c.autoscaling, target.endpoint)  # before the endpoint goes, as AWS asks
    c.sagemaker.delete_endpoint(EndpointName=target.endpoint)
    reason = (f"no approved version is left in {target.group}: {target.endpoint} is deleted and /predict answers "
              f"503 model_not_deployed until a version is approved")
    logger.warning("serving stopped", extra={"endpoint": target.endpoint, "reason": reason})
    return {"action": "stopped", "reason": reason}


def prepare(kind: str, target: Target, endpoint: dict | None, package: dict, c: Clients, s: Settings) -> dict:
    """The CreateEndpointConfig request that serves `package` as the deployment names it, its model and
    config made unless they exist."""
    h = s.hosting_of(kind)
    metrics = endpoints.evaluation_summary(package, c.s3, logger)
    model = endpoints.ensure_model(c.sagemaker, endpoints.model_request(h, kind, target.endpoint, package, metrics))
    request = endpoints.endpoint_config_request(h, kind, target.endpoint, package, model, endpoints.fleet_size(h, endpoint))
    endpoints.ensure_endpoint_config(c.sagemaker, request)
    return request


def deploy(kind: str, target: Target, endpoint: dict | None, package: dict, c: Clients, s: Settings,
           prepared: dict | None = None) -> dict:
    h = s.hosting_of(kind)
    request = prepared or prepare(kind, target, endpoint, package, c, s)
    config, fleet = request["EndpointConfigName"], request["ProductionVariants"][0]["InitialInstanceCount"]
    arn = package["ModelPackageArn"]
    if endpoint is None:
        # auto-scaling is registered once the endpoint is in service (its state-change event)
        endpoints.create_endpoint(c.sagemaker, target.endpoint, config, kind, arn)
        return {"action": "created", "config": config, "fleet": fleet}
    retyped = endpoints.instance_type_changes(endpoints.config_of(c.sagemaker, endpoint), h)
    if retyped:
        # SageMaker refuses an instance-type change on a variant registered for auto-scaling
        endpoints.deregister_autoscaling(c.autoscaling, target.endpoint)
    update = endpoints.blue_green_request(h, target.endpoint, config, fleet, target.alarms)
    try:
        endpoints.update_endpoint(c.sagemaker, update, endpoint["EndpointArn"], arn)
    except ClientError:
        if retyped:  # refused (a quota of the new type, a type the region lacks): keep the old fleet scaling
            endpoints.ensure_autoscaling(c.autoscaling, h, target.endpoint)
        raise
    routing = update["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"]
    return {"action": "updated", "config": config, "fleet": fleet, "traffic_routing": routing}


# ------------------------------------------------------------------------------------------ handler

processor = SqsFifoPartialProcessor(skip_group_on_error=True)
# A batch whose every message waits on a busy endpoint is a normal state during a deployment, not an
# invocation error: the messages are reported back to the queue and the Lambda Errors metric stays clean.
processor.raise_on_entire_batch_failure = False


def record_handler(record) -> dict:
    event = json.loads(record.body)
    try:
        return handle_event(event)
    except EndpointBusy as busy:  # expected while a deployment runs: not an error, just not yet
        logger.info("endpoint busy; retried from the queue", extra={"reason": str(busy)})
        raise
    except Exception as exc:  # retried from the queue too, but counted at once (alarm) rather than at the DLQ
        logger.exception("deployment step failed; retried from the queue")
        count("DeploymentErrors", 1, kind_of_event(event, settings()) or "unknown", error=f"{type(exc).__name__}: {exc}"[:500])
        raise


@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

"""A small fake of SageMaker hosting, the Model Registry, Application Auto Scaling and CloudWatch
alarms that is as strict as AWS where moto is not.

moto overwrites a model of the same name, has no endpoint states and no UpdateEndpoint, and runs
nothing on StartPipelineExecution. This fake answers real boto3 clients (botocore validates every
request against the service model before it gets here) and refuses what AWS refuses, with AWS's
error codes and messages:
- CreateModel / CreateEndpointConfig / CreateEndpoint of a name that exists: ValidationException
  "Cannot create already existing ...";
- UpdateEndpoint / DeleteEndpoint while the endpoint is Creating, Updating or Deleting:
  ValidationException "Cannot update in-progress endpoint ...";
- a blue/green CanarySize above 50 % of the new fleet: ValidationException;
- an instance-type change on a variant registered for auto-scaling: ValidationException;
- KmsKeyId on an instance type with local NVMe storage: ValidationException;
- Describe* of something missing: ValidationException "Could not find ...";
- CreateEndpoint / UpdateEndpoint beyond an instance type's endpoint-usage quota (`quotas`; the
  new fleet of a blue/green update counts beside the old one): ResourceLimitExceeded;
- AddTags with a key or value of a length or character SageMaker refuses, or beyond 50 tags on a
  resource: ValidationException.
Endpoints move through Creating → InService, Updating → InService (new config) or, when a rollback
alarm is in ALARM during the canary or bake time, back to InService on the old config; each change
is published as the EventBridge event SageMaker sends. Time only moves when the test says so
(`advance`), so a walk through a deployment is deterministic.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
from dataclasses import dataclass, field

import boto3

ACCOUNT, REGION = "123456789012", "eu-west-1"
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc)
#: How long SageMaker takes, in the fake's clock (seconds).
PROVISION_SECONDS, DELETE_SECONDS = 480, 120
#: Instance types with local NVMe storage, from the EC2 instance-store table (independent of IVADAS's own list).
LOCAL_NVME = ("ml.g4dn.", "ml.g5.", "ml.g6.", "ml.g6e.", "ml.m5d.", "ml.c5d.", "ml.r5d.", "ml.p4d.", "ml.p5.", "ml.trn1.",
              "ml.m6gd.", "ml.c6gd.")
PAGE = 2  # small pages, so that callers must follow NextToken
#: SageMaker's tag constraints (AddTags API reference): key and value patterns and lengths, tags per resource.
# ([\p{L}\p{Z}\p{N}_.:/=+\-@]*: Python's \w is Unicode letters, digits and _, with a space for \p{Z})
TAG_PATTERN, MAX_TAG_KEY, MAX_TAG_VALUE, MAX_TAGS = re.compile(r"^[\w .:/=+\-@]*$"), 128, 256, 50


class AwsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


def validation(message: str) -> AwsError:
    return AwsError("ValidationException", message)


@dataclass
class Http:
    status_code: int
    headers: dict = field(default_factory=dict)


@dataclass
class Deployment:
    """A blue/green UpdateEndpoint in progress."""

    old_config: str
    new_config: str
    fleet: int
    routing: dict
    termination_wait: int
    alarms: list[str]
    started: float
    deployment_config: dict

    def phases(self) -> tuple[float, float]:
        """(when traffic starts shifting, when the bake ends) in the fake's clock."""
        shifting = self.started + PROVISION_SECONDS
        wait = self.routing.get("WaitIntervalInSeconds", 0) if self.routing["Type"] != "ALL_AT_ONCE" else 0
        return shifting, shifting + wait + self.termination_wait


class StrictAws:
    def __init__(self):
        self.clock = 0.0
        self.models, self.configs, self.endpoints = {}, {}, {}
        self.tags: dict[str, dict[str, str]] = {}
        self.groups: dict[str, dict] = {}
        self.packages: dict[str, dict] = {}
        self.targets: dict[str, dict] = {}
        #: (resource, policy name) → the policy as DescribeScalingPolicies returns it
        self.policy_details: dict[tuple[str, str], dict] = {}
        self.alarms: dict[str, str] = {}
        self.events: list[dict] = []
        self.calls: list[str] = []
        #: (principal, IAM action, resource ARN) of every request, and of what AWS checks on the caller's behalf
        self.authorizations: list[tuple[str, str, str]] = []
        self.broken_models: set[str] = set()  # ModelDataUrls whose containers never pass the health check
        self.updates: list[dict] = []  # every UpdateEndpoint request SageMaker accepted
        self.quotas: dict[str, int] = {}  # instance type → the account's endpoint-usage quota (default: none)
        #: operation → exception raised once, before the operation does anything (a Lambda cut off mid-way)
        self.interrupt: dict[str, Exception] = {}

    # ------------------------------------------------------------------ wiring to real boto3 clients

    def client(self, service: str, principal: str = "caller"):
        """A real boto3 client answered by this fake; `principal` names who calls (for IAM checks)."""
        client = boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-parameter-build.{service_id}", self._keep_params)
        client.meta.events.register(f"before-call.{service_id}",
                                    lambda model, context, **_: self._answer(model, context, principal))
        return client

    @staticmethod
    def _keep_params(params, context, **_):
        context["strict_params"] = copy.deepcopy(params)

    def _answer(self, model, context, principal: str):
        operation = model.name
        self.calls.append(operation)
        params = context["strict_params"]
        self.authorizations += [(principal, action, resource) for action, resource in
                                self._authorizations(model.service_model.service_name, operation, params)]
        if operation in self.interrupt:
            raise self.interrupt.pop(operation)
        handler = getattr(self, f"op_{operation}", None)
        if handler is None:
            raise NotImplementedError(f"the strict fake does not implement {operation}")
        try:
            body = handler(**params) or {}
        except AwsError as error:
            return Http(error.status), {"Error": {"Code": error.code, "Message": error.message},
                                        "ResponseMetadata": {"HTTPStatusCode": error.status}}
        return Http(200), {**copy.deepcopy(body), "ResponseMetadata": {"HTTPStatusCode": 200}}

    # ------------------------------------------------------------------ what IAM checks

    def _authorizations(self, service: str, operation: str, p: dict) -> list[tuple[str, str]]:
        """The IAM action and resource of a request, plus the permissions AWS documents it needs of the
        caller besides (PassRole of the model's role, a KMS grant for an encrypted endpoint volume, the
        rollback alarms, what Application Auto Scaling needs to register a SageMaker variant)."""
        if service == "sagemaker":
            return self._sagemaker_authorizations(operation, p)
        if service == "application-autoscaling":
            target = f"arn:aws:application-autoscaling:{REGION}:{ACCOUNT}:scalable-target/{p.get('ResourceId', '')}"
            alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:TargetTracking-{p.get('ResourceId', '')}-AlarmHigh-0000"
            if operation.startswith("Describe"):
                return [(f"application-autoscaling:{operation}", "*")]
            checks = [(f"application-autoscaling:{operation}", target)]
            if operation == "RegisterScalableTarget":
                endpoint = self.endpoints.get(p["ResourceId"].split("/")[1], {})
                checks += [("iam:CreateServiceLinkedRole", f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/sagemaker.application-"
                            "autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"),
                           ("sagemaker:DescribeEndpoint", endpoint.get("EndpointArn", "")),
                           ("sagemaker:DescribeEndpointConfig", self.arn("endpoint-config", endpoint.get("EndpointConfigName", ""))),
                           ("sagemaker:UpdateEndpointWeightsAndCapacities", endpoint.get("EndpointArn", ""))]
            if operation == "PutScalingPolicy":
                checks += [("cloudwatch:PutMetricAlarm", alarm), ("cloudwatch:DescribeAlarms", alarm)]
            if operation == "DeregisterScalableTarget":
                checks += [("cloudwatch:DeleteAlarms", alarm)]
            return checks
        names = p.get("AlarmNames") or ["*"]
        return [(f"{service}:{operation}", self._alarm_arn(n) if n != "*" else "*") for n in names]

    def _alarm_arn(self, name: str) -> str:
        return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"

    def _sagemaker_authorizations(self, operation: str, p: dict) -> list[tuple[str, str]]:
        resource = (
            self.arn("model", p["ModelName"]) if "ModelName" in p and "Model" in operation
            else self.arn("endpoint-config", p["EndpointConfigName"]) if "EndpointConfig" in operation
            else self.arn("endpoint", p["EndpointName"]) if "EndpointName" in p
            else p.get("ResourceArn") or p.get("ModelPackageArn")
            or (p["ModelPackageName"] if "ModelPackageName" in p else None)
            or (self.arn("model-package-group", p["ModelPackageGroupName"]) if operation.endswith("Group") else "*"))
        checks = [(f"sagemaker:{operation}", resource)]
        if operation == "CreateModel":
            checks.append(("iam:PassRole", p["ExecutionRoleArn"]))
        if operation in ("CreateEndpoint", "UpdateEndpoint") and p["EndpointConfigName"] in self.configs:
            key = self.configs[p["EndpointConfigName"]].get("KmsKeyId")
            if key:
                checks.append(("kms:CreateGrant", key))
        if operation == "UpdateEndpoint":
            alarms = (p.get("DeploymentConfig") or {}).get("AutoRollbackConfiguration", {}).get("Alarms", [])
            checks += [("cloudwatch:DescribeAlarms", self._alarm_arn(a["AlarmName"])) for a in alarms]
        return checks

    # ------------------------------------------------------------------ time, alarms, events

    def now(self) -> dt.datetime:
        return START + dt.timedelta(seconds=self.clock)

    def advance(self, seconds: float, step: float = 30.0) -> None:
        end = self.clock + seconds
        while self.clock < end:
            self.clock = min(end, self.clock + step)
            for name in list(self.endpoints):
                self._progress(name)

    def set_alarm(self, name: str, state: str) -> None:
        assert name in self.alarms, f"no alarm {name}"
        self.alarms[name] = state

    def _publish(self, detail_type: str, resource: str, detail: dict) -> None:
        self.events.append({"version": "0", "id": f"event-{len(self.events)}", "detail-type": detail_type,
                            "source": "aws.sagemaker", "account": ACCOUNT, "time": self.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "region": REGION, "resources": [resource], "detail": detail})

    def _endpoint_event(self, endpoint: dict) -> None:
        status = "".join("_" + c if c.isupper() else c for c in endpoint["EndpointStatus"]).lstrip("_").upper()
        self._publish("SageMaker Endpoint State Change", endpoint["EndpointArn"],
                      {"EndpointName": endpoint["EndpointName"], "EndpointArn": endpoint["EndpointArn"],
                       "EndpointConfigName": endpoint["EndpointConfigName"], "EndpointStatus": status})

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"

    # ------------------------------------------------------------------ endpoint lifecycle

    def _progress(self, name: str) -> None:
        endpoint = self.endpoints[name]
        status = endpoint["EndpointStatus"]
        if status == "Creating" and self.clock >= endpoint["_ready_at"]:
            if self._config_is_broken(endpoint["EndpointConfigName"]):
                endpoint.update(EndpointStatus="Failed", FailureReason="The primary container for production variant "
                                "AllTraffic did not pass the ping health check.")
            else:
                endpoint["EndpointStatus"] = "InService"
                self._set_fleet(endpoint, self.configs[endpoint["EndpointConfigName"]])
            self._endpoint_event(endpoint)
        elif status == "Deleting" and self.clock >= endpoint["_ready_at"]:
            del self.endpoints[name]
        elif status == "Updating":
            self._progress_deployment(endpoint)

    def _progress_deployment(self, endpoint: dict) -> None:
        deployment: Deployment = endpoint["_deployment"]
        shifting, done = deployment.phases()
        if self.clock < shifting:
            return
        if self._config_is_broken(deployment.new_config):
            return self._roll_back(endpoint, "The new fleet did not pass the ping health check; rolled back to the old fleet.")
        firing = [a for a in deployment.alarms if self.alarms.get(a) == "ALARM"]
        if firing:
            return self._roll_back(endpoint, f"Rolled back because alarm(s) {', '.join(firing)} were in ALARM state.")
        if self.clock >= done:
            endpoint.update(EndpointStatus="InService", EndpointConfigName=deployment.new_config,
                            LastDeploymentConfig=deployment.deployment_config)
            endpoint.pop("_deployment")
            endpoint.pop("FailureReason", None)
            self._set_fleet(endpoint, self.configs[deployment.new_config], deployment.fleet)
            self._endpoint_event(endpoint)

    def _roll_back(self, endpoint: dict, reason: str) -> None:
        deployment = endpoint.pop("_deployment")
        endpoint.update(EndpointStatus="InService", EndpointConfigName=deployment.old_config, FailureReason=reason,
                        LastDeploymentConfig=deployment.deployment_config)
        self._endpoint_event(endpoint)

    def _config_is_broken(self, config_name: str) -> bool:
        config = self.configs[config_name]
        return any(self.models[v["ModelName"]]["PrimaryContainer"].get("ModelDataUrl") in self.broken_models
                   for v in config["ProductionVariants"])

    @staticmethod
    def _set_fleet(endpoint: dict, config: dict, count: int | None = None) -> None:
        variant = config["ProductionVariants"][0]
        n = count or variant["InitialInstanceCount"]
        endpoint["ProductionVariants"] = [{"VariantName": variant["VariantName"], "CurrentInstanceCount": n,
                                           "DesiredInstanceCount": n, "CurrentWeight": 1.0, "DesiredWeight": 1.0}]

    def _endpoint(self, name: str) -> dict:
        if name not in self.endpoints:
            raise validation(f'Could not find endpoint "{name}".')
        return self.endpoints[name]

    def _public(self, record: dict) -> dict:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    # ------------------------------------------------------------------ SageMaker: models and configs

    def op_CreateModel(self, ModelName, Tags=(), **request):
        arn = self.arn("model", ModelName)
        if ModelName in self.models:
            raise validation(f'Cannot create already existing model "{arn}".')
        self.models[ModelName] = {"ModelName": ModelName, "ModelArn": arn, "CreationTime": self.now(), **request}
        self.tags[arn] = {t["Key"]: t["Value"] for t in Tags}
        return {"ModelArn": arn}

    def op_DescribeModel(self, ModelName):
        if ModelName not in self.models:
            raise validation(f'Could not find model "{self.arn("model", ModelName)}".')
        return self.models[ModelName]

    def op_CreateEndpointConfig(self, EndpointConfigName, ProductionVariants, Tags=(), **request):
        arn = self.arn("endpoint-config", EndpointConfigName)
        if EndpointConfigName in self.configs:
            raise validation(f'Cannot create already existing endpoint configuration "{arn}".')
        for variant in ProductionVariants:
            if variant["ModelName"] not in self.models:
                raise validation(f'Could not find model "{self.arn("model", variant["ModelName"])}".')
            if request.get("KmsKeyId") and variant["InstanceType"].startswith(LOCAL_NVME):
                raise validation(f"The instance type {variant['InstanceType']} has local instance storage, which is "
                                 f"encrypted in hardware; KmsKeyId is not supported for it.")
        self.configs[EndpointConfigName] = {"EndpointConfigName": EndpointConfigName, "EndpointConfigArn": arn,
                                            "ProductionVariants": ProductionVariants, "CreationTime": self.now(), **request}
        self.tags[arn] = {t["Key"]: t["Value"] for t in Tags}
        return {"EndpointConfigArn": arn}

    def op_DescribeEndpointConfig(self, EndpointConfigName):
        if EndpointConfigName not in self.configs:
            raise validation(f'Could not find endpoint configuration "{EndpointConfigName}".')
        return self.configs[EndpointConfigName]

    # ------------------------------------------------------------------ SageMaker: endpoints

    def op_CreateEndpoint(self, EndpointName, EndpointConfigName, Tags=(), **_):
        arn = self.arn("endpoint", EndpointName)
        if EndpointName in self.endpoints:
            raise validation(f'Cannot create already existing endpoint "{arn}".')
        if EndpointConfigName not in self.configs:
            raise validation(f'Could not find endpoint configuration "{EndpointConfigName}".')
        config = self.configs[EndpointConfigName]
        self._check_quota(config, config["ProductionVariants"][0]["InitialInstanceCount"])
        self.endpoints[EndpointName] = {
            "EndpointName": EndpointName, "EndpointArn": arn, "EndpointConfigName": EndpointConfigName,
            "EndpointStatus": "Creating", "CreationTime": self.now(), "LastModifiedTime": self.now(),
            "_ready_at": self.clock + PROVISION_SECONDS,
        }
        self.tags[arn] = {t["Key"]: t["Value"] for t in Tags}
        self._endpoint_event(self.endpoints[EndpointName])
        return {"EndpointArn": arn}

    def op_DescribeEndpoint(self, EndpointName):
        endpoint = self._endpoint(EndpointName)
        described = self._public(endpoint)
        if "_deployment" in endpoint:
            described["PendingDeploymentSummary"] = {"EndpointConfigName": endpoint["_deployment"].new_config}
        return described

    def op_UpdateEndpoint(self, EndpointName, EndpointConfigName, DeploymentConfig=None, RetainAllVariantProperties=False, **_):
        endpoint = self._endpoint(EndpointName)
        if endpoint["EndpointStatus"] != "InService":
            raise validation(f'Cannot update in-progress endpoint "{endpoint["EndpointArn"]}".')
        if EndpointConfigName not in self.configs:
            raise validation(f'Could not find endpoint configuration "{EndpointConfigName}".')
        new, old = self.configs[EndpointConfigName], self.configs[endpoint["EndpointConfigName"]]
        fleet = (endpoint["ProductionVariants"][0]["DesiredInstanceCount"] if RetainAllVariantProperties
                 else new["ProductionVariants"][0]["InitialInstanceCount"])
        self._check_autoscaled_instance_type(EndpointName, old, new)
        self._check_quota(new, fleet)  # blue/green: the green fleet runs beside the blue one
        policy = (DeploymentConfig or {}).get("BlueGreenUpdatePolicy", {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE"}})
        routing = policy["TrafficRoutingConfiguration"]
        self._check_routing(routing, fleet)
        alarms = [a["AlarmName"] for a in (DeploymentConfig or {}).get("AutoRollbackConfiguration", {}).get("Alarms", [])]
        missing = [a for a in alarms if a not in self.alarms]
        if missing:
            raise validation(f"The alarm(s) {missing} do not exist.")
        endpoint.update(EndpointStatus="Updating", LastModifiedTime=self.now())
        self.updates.append({"EndpointName": EndpointName, "EndpointConfigName": EndpointConfigName,
                             "DeploymentConfig": copy.deepcopy(DeploymentConfig), "fleet": fleet})
        endpoint["_deployment"] = Deployment(endpoint["EndpointConfigName"], EndpointConfigName, fleet, routing,
                                             policy.get("TerminationWaitInSeconds", 0), alarms, self.clock,
                                             DeploymentConfig or {})
        self._endpoint_event(endpoint)
        return {"EndpointArn": endpoint["EndpointArn"]}

    def _check_routing(self, routing: dict, fleet: int) -> None:
        if routing["Type"] in ("CANARY", "LINEAR"):
            size = routing.get("CanarySize" if routing["Type"] == "CANARY" else "LinearStepSize")
            if not size:
                raise validation(f"{routing['Type']} traffic routing needs a step size.")
            instances = size["Value"] if size["Type"] == "INSTANCE_COUNT" else math.ceil(fleet * size["Value"] / 100)
            if 2 * instances > fleet:
                raise validation(f"CanarySize of {instances} instance(s) must be less than or equal to 50% of the "
                                 f"variant's total instance count ({fleet}).")

    def _check_autoscaled_instance_type(self, endpoint: str, old: dict, new: dict) -> None:
        for before in old["ProductionVariants"]:
            after = next((v for v in new["ProductionVariants"] if v["VariantName"] == before["VariantName"]), None)
            registered = f"endpoint/{endpoint}/variant/{before['VariantName']}" in self.targets
            if registered and after and after["InstanceType"] != before["InstanceType"]:
                raise validation(f"The variant {before['VariantName']} is a scalable target of Application Auto Scaling; "
                                 f"deregister it before changing its instance type.")

    def _check_quota(self, config: dict, fleet: int) -> None:
        instance_type = config["ProductionVariants"][0]["InstanceType"]
        if instance_type not in self.quotas:
            return
        in_use = sum(v.get("CurrentInstanceCount", 0) for e in self.endpoints.values()
                     for v in e.get("ProductionVariants", [])
                     if self.configs[e["EndpointConfigName"]]["ProductionVariants"][0]["InstanceType"] == instance_type)
        if in_use + fleet > self.quotas[instance_type]:
            raise AwsError("ResourceLimitExceeded", (
                f"The account-level service limit '{instance_type} for endpoint usage' is {self.quotas[instance_type]} "
                f"Instances, with current utilization of {in_use} Instances and a request delta of {fleet} Instances. "
                "Please use AWS Service Quotas to request an increase for this quota. If AWS Service Quotas is not "
                "available, contact AWS support to request an increase for this quota."))

    def op_DeleteEndpoint(self, EndpointName):
        endpoint = self._endpoint(EndpointName)
        if endpoint["EndpointStatus"] in ("Creating", "Updating", "Deleting", "SystemUpdating", "RollingBack"):
            raise validation(f'Cannot update in-progress endpoint "{endpoint["EndpointArn"]}".')
        for resource in [r for r in self.targets if r.startswith(f"endpoint/{EndpointName}/")]:
            del self.targets[resource]  # Application Auto Scaling deregisters silently on deletion
            self._drop_policies(resource)
        endpoint.update(EndpointStatus="Deleting", _ready_at=self.clock + DELETE_SECONDS)
        return {}

    # ------------------------------------------------------------------ SageMaker: tags

    def op_ListTags(self, ResourceArn, NextToken=None, **_):
        if ResourceArn not in self.tags:
            raise validation(f"Could not find resource {ResourceArn}.")
        items = [{"Key": k, "Value": v} for k, v in sorted(self.tags[ResourceArn].items())]
        start = int(NextToken or 0)
        page = {"Tags": items[start:start + PAGE]}
        if start + PAGE < len(items):
            page["NextToken"] = str(start + PAGE)
        return page

    def op_AddTags(self, ResourceArn, Tags):
        for tag in Tags:
            if not (0 < len(tag["Key"]) <= MAX_TAG_KEY and len(tag["Value"]) <= MAX_TAG_VALUE
                    and TAG_PATTERN.match(tag["Key"]) and TAG_PATTERN.match(tag["Value"])):
                raise validation(f"1 validation error detected: Value '{tag}' at 'tags' failed to satisfy constraint: "
                                 f"Member must satisfy the tag key and value constraints")
        tags = {**self.tags.get(ResourceArn, {}), **{t["Key"]: t["Value"] for t in Tags}}
        if len(tags) > MAX_TAGS:
            raise validation(f"You have exceeded the number of tags allowed for resource {ResourceArn}: {MAX_TAGS}.")
        self.tags[ResourceArn] = tags
        return {"Tags": Tags}

    def op_DeleteTags(self, ResourceArn, TagKeys):
        for key in TagKeys:
            self.tags.get(ResourceArn, {}).pop(key, None)
        return {}

    # ------------------------------------------------------------------ SageMaker: Model Registry

    def op_CreateModelPackageGroup(self, ModelPackageGroupName, **_):
        arn = self.arn("model-package-group", ModelPackageGroupName)
        if ModelPackageGroupName in self.groups:
            raise validation(f"Model Package Group already exists: {arn}")
        self.groups[ModelPackageGroupName] = {"ModelPackageGroupName": ModelPackageGroupName, "ModelPackageGroupArn": arn,
                                              "CreationTime": self.now(), "ModelPackageGroupStatus": "Completed"}
        return {"ModelPackageGroupArn": arn}

    def op_DescribeModelPackageGroup(self, ModelPackageGroupName):
        if ModelPackageGroupName not in self.groups:
            raise validation(f"ModelPackageGroup {ModelPackageGroupName} does not exist.")
        return self.groups[ModelPackageGroupName]

    def op_ListModelPackageGroups(self, NextToken=None, **_):
        return {"ModelPackageGroupSummaryList": list(self.groups.values())}

    def op_CreateModelPackage(self, ModelPackageGroupName, ModelApprovalStatus="PendingManualApproval", **request):
        if ModelPackageGroupName not in self.groups:
            raise validation(f"Model Package Group {ModelPackageGroupName} does not exist.")
        version = 1 + sum(1 for p in self.packages.values() if p["ModelPackageGroupName"] == ModelPackageGroupName)
        arn = self.arn("model-package", f"{ModelPackageGroupName}/{version}")
        self.packages[arn] = {"ModelPackageGroupName": ModelPackageGroupName, "ModelPackageVersion": version,
                              "ModelPackageArn": arn, "ModelApprovalStatus": ModelApprovalStatus, "CreationTime": self.now(),
                              "LastModifiedTime": self.now(), "ModelPackageStatus": "Completed", **request}
        return {"ModelPackageArn": arn}

    def _package(self, name: str) -> dict:
        if name not in self.packages:
            raise validation(f"ModelPackage {name} does not exist.")
        return self.packages[name]

    def op_DescribeModelPackage(self, ModelPackageName):
        return self._package(ModelPackageName)

    def op_ListModelPackages(self, ModelPackageGroupName=None, ModelApprovalStatus=None, NextToken=None, **_):
        matching = [{k: p[k] for k in ("ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn", "CreationTime",
                                       "ModelPackageStatus", "ModelApprovalStatus")}
                    for p in self.packages.values()
                    if ModelPackageGroupName in (None, p["ModelPackageGroupName"])
                    and ModelApprovalStatus in (None, p["ModelApprovalStatus"])]
        start = int(NextToken or 0)
        page = {"ModelPackageSummaryList": matching[start:start + PAGE]}
        if start + PAGE < len(matching):
            page["NextToken"] = str(start + PAGE)
        return page

    def op_UpdateModelPackage(self, ModelPackageArn, ModelApprovalStatus=None, ApprovalDescription=None,
                              CustomerMetadataProperties=None, CustomerMetadataPropertiesToRemove=(), **_):
        package = self._package(ModelPackageArn)
        properties = {**package.get("CustomerMetadataProperties", {}), **(CustomerMetadataProperties or {})}
        for key in CustomerMetadataPropertiesToRemove:
            properties.pop(key, None)
        if len(properties) > 50:
            raise validation("CustomerMetadataProperties may hold at most 50 entries.")
        package["CustomerMetadataProperties"] = properties
        if ModelApprovalStatus:
            package["ModelApprovalStatus"] = ModelApprovalStatus
        if ApprovalDescription is not None:
            package["ApprovalDescription"] = ApprovalDescription
        package["LastModifiedTime"] = self.now()
        self._publish("SageMaker Model Package State Change", ModelPackageArn,
                      {k: package[k] for k in ("ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn",
                                               "ModelApprovalStatus")})
        return {"ModelPackageArn": ModelPackageArn}

    # ------------------------------------------------------------------ Application Auto Scaling

    def op_RegisterScalableTarget(self, ServiceNamespace, ResourceId, ScalableDimension, MinCapacity=None, MaxCapacity=None, **_):
        endpoint = ResourceId.split("/")[1]
        if endpoint not in self.endpoints or self.endpoints[endpoint]["EndpointStatus"] != "InService":
            raise validation(f"The endpoint {endpoint} is not in service; it cannot be registered as a scalable target.")
        self.targets[ResourceId] = {"ServiceNamespace": ServiceNamespace, "ResourceId": ResourceId,
                                    "ScalableDimension": ScalableDimension, "MinCapacity": MinCapacity,
                                    "MaxCapacity": MaxCapacity, "RoleARN": "arn:aws:iam::role/autoscaling",
                                    "CreationTime": self.now()}
        return {}

    def op_DescribeScalableTargets(self, ServiceNamespace, ResourceIds=(), **_):
        return {"ScalableTargets": [t for r, t in self.targets.items() if not ResourceIds or r in ResourceIds]}

    def op_DeregisterScalableTarget(self, ServiceNamespace, ResourceId, ScalableDimension):
        if ResourceId not in self.targets:
            raise AwsError("ObjectNotFoundException", f"No scalable target registered for {ResourceId}")
        del self.targets[ResourceId]
        self._drop_policies(ResourceId)
        return {}

    def _drop_policies(self, resource: str) -> None:
        """A deregistered target's scaling policies are deleted with it, as Application Auto Scaling does."""
        for key in [k for k in self.policy_details if k[0] == resource]:
            del self.policy_details[key]

    @property
    def policies(self) -> dict[str, list[str]]:
        """Scalable target → the names of its scaling policies."""
        names: dict[str, list[str]] = {}
        for resource, name in self.policy_details:
            names.setdefault(resource, []).append(name)
        return names

    def op_PutScalingPolicy(self, PolicyName, ServiceNamespace, ResourceId, ScalableDimension, PolicyType="StepScaling",
                            TargetTrackingScalingPolicyConfiguration=None, **_):
        if ResourceId not in self.targets:
            raise AwsError("ObjectNotFoundException", f"No scalable target registered for {ResourceId}")
        arn = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:scalingPolicy:{PolicyName}"
        # a policy of the same name is replaced, as Application Auto Scaling does
        self.policy_details[(ResourceId, PolicyName)] = {
            "PolicyARN": arn, "PolicyName": PolicyName, "ServiceNamespace": ServiceNamespace, "ResourceId": ResourceId,
            "ScalableDimension": ScalableDimension, "PolicyType": PolicyType, "CreationTime": self.now(),
            "TargetTrackingScalingPolicyConfiguration": copy.deepcopy(TargetTrackingScalingPolicyConfiguration)}
        return {"PolicyARN": arn, "Alarms": []}

    def op_DescribeScalingPolicies(self, ServiceNamespace, ResourceId=None, PolicyNames=(), **_):
        return {"ScalingPolicies": [policy for (resource, name), policy in self.policy_details.items()
                                    if ResourceId in (None, resource) and (not PolicyNames or name in PolicyNames)]}

    # ------------------------------------------------------------------ CloudWatch

    def op_DescribeAlarms(self, AlarmNames=(), StateValue=None, **_):
        return {"MetricAlarms": [{"AlarmName": name, "StateValue": state} for name, state in self.alarms.items()
                                 if (not AlarmNames or name in AlarmNames) and StateValue in (None, state)]}

"""Serving: one real-time endpoint per model kind, kept on the served version by the deploy Lambda.

Endpoints are created by `lambda/deploy` at the first approval (nothing is deployed before), then
updated blue/green with automatic rollback on the alarms defined here. Every trigger of the deploy
Lambda (approvals, endpoint state changes, a schedule) goes through one SQS FIFO queue whose message
group is the model kind: a kind's deployments run one at a time, a busy endpoint's message waits in
the queue, and what cannot be done in time lands in a dead-letter queue that has an alarm.
"""

import json
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from inference.kinds import MODEL_KINDS, kind_info
from infra.aws.constructs.storage import DATA_CAPTURE_PREFIX

ROOT = Path(__file__).resolve().parents[3]
DEPLOY_SERVICE = "ivadas-deploy"
METRICS_NAMESPACE = "IVADAS"
RECONCILE_EVENT = "IVADAS Reconcile"
#: The Lambda's view of endpoint states it acts on (EventBridge spells them in upper snake case).
ENDPOINT_STATES = ["IN_SERVICE", "FAILED", "UPDATE_ROLLBACK_FAILED"]
AUTOSCALING_SLR = "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"


def rollback_alarm_names(endpoint: str) -> list[str]:
    return [f"{endpoint}-5xx", f"{endpoint}-model-latency"]


def kind_id(kind: str) -> str:
    """A kind as a construct ID (isolation_forest → IsolationForest)."""
    return "".join(part.title() for part in kind.replace("-", "_").split("_"))


def powertools_layer(scope: Construct, construct_id: str, version: int) -> lambda_.ILayerVersion:
    """AWS's public Powertools for AWS Lambda (Python) v3 layer (it carries pydantic too)."""
    stack = Stack.of(scope)
    arn = f"arn:{stack.partition}:lambda:{stack.region}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:{version}"
    return lambda_.LayerVersion.from_layer_version_arn(scope, construct_id, arn)


class Serving(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, storage, images, powertools_version: int):
        super().__init__(scope, construct_id)
        self.config = config
        self.endpoint_names = {kind: config.endpoint_name(kind) for kind in MODEL_KINDS}
        self.model_role = self._model_role(config, storage, images)
        self.alarms = {kind: self._rollback_alarms(kind, name) for kind, name in self.endpoint_names.items()}
        self.queue, self.dead_letters = self._deployment_queue(config)
        self.function = self._deploy_function(config, storage, powertools_version)
        self._grant_deploy_permissions(config, storage)
        self._route_triggers(config)
        self.deployment_alarms = self._deployment_alarms(config)

    # ------------------------------------------------------------------------------ what callers of the endpoints read

    @property
    def model_environment(self) -> dict[str, str]:
        """The kinds this deployment serves as every Lambda that calls an endpoint reads them
        (lambda/predict/endpoint_client.py): kind → endpoint, kind → modality, modality → default kind."""
        return {
            "ENDPOINT_NAMES": json.dumps(self.endpoint_names),
            "MODEL_MODALITIES": json.dumps({kind: kind_info(kind).modality for kind in self.endpoint_names}),
            "DEFAULT_MODELS": json.dumps(self.config.default_models),
        }

    def endpoint_arns(self, kinds=None) -> list[str]:
        """ARNs of the endpoints of `kinds` (every kind when None), for sagemaker:InvokeEndpoint."""
        stack = Stack.of(self)
        return [f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:endpoint/{self.endpoint_names[kind]}"
                for kind in (kinds if kinds is not None else self.endpoint_names)]

    # ------------------------------------------------------------------------------ roles

    def _model_role(self, config, storage, images) -> iam.Role:
        stack = Stack.of(self)
        role = iam.Role(self, "ModelRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                        description="IVADAS endpoints: read model bundles, write data capture")
        storage.artifacts.grant_read(role, "pipelines/*")  # the bundles, under the project key: decrypt only
        # Captured requests are inspection data: SageMaker writes them as this role, SSE-KMS with the
        # inspection key (DataCaptureConfig's KmsKeyId). PutObject alone, and no use of the project
        # key for writing (CDK's grant_put would add Encrypt, GenerateDataKey* and ReEncrypt* on it).
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:PutObject"], resources=[storage.artifacts.arn_for_objects(f"{DATA_CAPTURE_PREFIX}*")]))
        storage.grant_inspection_objects(role, write=True)
        images.endpoint.repository.grant_pull(role)
        role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:/aws/sagemaker/Endpoints/{config.prefix}-*"]))
        role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"],
                                               conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}))
        # Deployment guardrails: "your IAM execution role has permission to perform cloudwatch:DescribeAlarms
        # on the auto-rollback alarms" (SageMaker, Auto-Rollback Configuration and Monitoring).
        role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:DescribeAlarms"], resources=self._rollback_alarm_arns()))
        return role

    def _rollback_alarm_arns(self) -> list[str]:
        stack = Stack.of(self)
        return [f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:{name}"
                for endpoint in self.endpoint_names.values() for name in rollback_alarm_names(endpoint)]

    # ------------------------------------------------------------------------------ queue and function

    def _deployment_queue(self, config) -> tuple[sqs.Queue, sqs.Queue]:
        dead_letters = sqs.Queue(
            self, "DeploymentDeadLetters", fifo=True, encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            retention_period=Duration.days(14))
        queue = sqs.Queue(
            self, "Deployments", fifo=True, content_based_deduplication=True, encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True, visibility_timeout=Duration.seconds(config.deploy_queue_visibility_seconds),
            retention_period=Duration.days(1),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=config.deploy_queue_max_receives))
        return queue, dead_letters

    def _any_volume_key(self, config) -> bool:
        """Whether some kind's endpoint volume takes the project key (none does when every kind is on local NVMe)."""
        return any(config.endpoint_volume_kms_supported(kind) for kind in self.endpoint_names)

    def _deploy_function(self, config, storage, powertools_version: int) -> lambda_.Function:
        targets_env = {kind: {"group": config.model_package_group(kind), "endpoint": name,
                              "alarms": rollback_alarm_names(name), "instance_type": config.endpoint_instance_type_of(kind),
                              "volume_key": config.endpoint_volume_kms_supported(kind),
                              "invocations_per_instance": config.endpoint_invocations_per_instance_of(kind)}
                       for kind, name in self.endpoint_names.items()}
        environment = {
            "DEPLOY_TARGETS": json.dumps(targets_env, separators=(",", ":")),
            "SAGEMAKER_ROLE_ARN": self.model_role.role_arn, "ENDPOINT_INSTANCE_TYPE": config.endpoint_instance_type,
            "ENDPOINT_MIN_INSTANCES": str(config.endpoint_min_instances),
            "ENDPOINT_MAX_INSTANCES": str(config.endpoint_max_instances),
            "TARGET_INVOCATIONS_PER_INSTANCE": str(config.endpoint_invocations_per_instance),
            "CANARY_PERCENT": str(config.canary_percent), "CANARY_WAIT_SECONDS": str(config.canary_wait_seconds),
            "BAKE_SECONDS": str(config.bake_seconds), "DEPLOYMENT_TIMEOUT_SECONDS": str(config.deployment_timeout_seconds),
            "DATA_CAPTURE_URI": f"s3://{storage.artifacts.bucket_name}/{DATA_CAPTURE_PREFIX.rstrip('/')}",
            "DATA_CAPTURE_KMS_KEY_ID": storage.inspection_key.key_arn,  # the requests are inspection data
            "POWERTOOLS_SERVICE_NAME": DEPLOY_SERVICE, "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }
        if self._any_volume_key(config):  # CreateEndpointConfig refuses a KmsKeyId on local-NVMe types
            environment["ENDPOINT_VOLUME_KMS_KEY_ID"] = storage.key.key_arn
        function = lambda_.Function(
            self, "DeployFunction", runtime=lambda_.Runtime.PYTHON_3_11, architecture=lambda_.Architecture.X86_64,
            handler="deploy_app.handler", code=lambda_.Code.from_asset(str(ROOT / "lambda" / "deploy")),
            layers=[powertools_layer(self, "PowertoolsLayer", powertools_version)],
            timeout=Duration.seconds(config.deploy_lambda_timeout_seconds), memory_size=256, tracing=lambda_.Tracing.ACTIVE,
            description="IVADAS: registry's served version → endpoint",
            log_group=logs.LogGroup(self, "DeployLogs", retention=logs.RetentionDays.THREE_MONTHS),
            environment=environment,
        )
        # Ten messages at most, across kinds; a busy endpoint's message is handed back alone.
        function.add_event_source(sources.SqsEventSource(self.queue, batch_size=10, report_batch_item_failures=True))
        return function

    def _grant_deploy_permissions(self, config, storage) -> None:
        stack = Stack.of(self)
        sm_arn = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        hosted = [f"{sm_arn}:{kind}/{config.prefix}-*" for kind in ("endpoint", "endpoint-config", "model")]
        add = self.function.add_to_role_policy
        add(iam.PolicyStatement(
            actions=["sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:CreateEndpointConfig",
                     "sagemaker:DescribeEndpointConfig", "sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint",
                     "sagemaker:DeleteEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities",
                     "sagemaker:ListTags", "sagemaker:AddTags", "sagemaker:DeleteTags"],
            resources=hosted))
        # ListModelPackages has no resource-level permissions; reading and deciding are scoped to our groups.
        add(iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"]))
        add(iam.PolicyStatement(
            actions=["sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"],
            resources=[f"{sm_arn}:model-package/{config.pipeline_name}-*/*"]))
        add(iam.PolicyStatement(actions=["iam:PassRole"], resources=[self.model_role.role_arn],
                                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
        # Auto-scaling as the SageMaker and Application Auto Scaling guides list it: scalable targets (IDs
        # are generated, so no prefix), describe calls without resource-level permissions, the alarms
        # target tracking creates, and the service-linked role it needs once per account.
        add(iam.PolicyStatement(
            actions=["application-autoscaling:RegisterScalableTarget", "application-autoscaling:DeregisterScalableTarget",
                     "application-autoscaling:PutScalingPolicy", "application-autoscaling:DeleteScalingPolicy"],
            resources=[f"arn:{stack.partition}:application-autoscaling:{stack.region}:{stack.account}:scalable-target/*"]))
        add(iam.PolicyStatement(
            actions=["application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies",
                     "application-autoscaling:DescribeScalingActivities"],
            resources=["*"]))
        add(iam.PolicyStatement(
            actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
            resources=[f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:TargetTracking-endpoint/{config.prefix}-*"]))
        add(iam.PolicyStatement(actions=["cloudwatch:DescribeAlarms"], resources=self._rollback_alarm_arns()))
        add(iam.PolicyStatement(
            actions=["iam:CreateServiceLinkedRole"], resources=[f"arn:{stack.partition}:iam::{stack.account}:role/{AUTOSCALING_SLR}"],
            conditions={"StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}}))
        if self._any_volume_key(self.config):
            # CreateEndpoint and UpdateEndpoint with a KmsKeyId: SageMaker creates a grant on the caller's behalf.
            add(iam.PolicyStatement(actions=["kms:CreateGrant", "kms:DescribeKey"], resources=[storage.key.key_arn],
                                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}))
        storage.artifacts.grant_read(self.function, "pipelines/*")

    # ------------------------------------------------------------------------------ triggers

    def _route_triggers(self, config) -> None:
        """Per kind: approvals, endpoint state changes and a schedule, all into the kind's message group."""
        for kind, endpoint in self.endpoint_names.items():
            into_queue = dict(message_group_id=kind)
            name = kind_id(kind)
            events.Rule(self, f"{name}Approvals", description=f"IVADAS {kind}: approvals and rejections → deployment queue",
                        event_pattern=events.EventPattern(
                            source=["aws.sagemaker"], detail_type=["SageMaker Model Package State Change"],
                            detail={"ModelPackageGroupName": [config.model_package_group(kind)],
                                    "ModelApprovalStatus": ["Approved", "Rejected"]}),
                        targets=[targets.SqsQueue(self.queue, **into_queue)])
            events.Rule(self, f"{name}EndpointState", description=f"IVADAS {kind}: endpoint state → deployment queue",
                        event_pattern=events.EventPattern(
                            source=["aws.sagemaker"], detail_type=["SageMaker Endpoint State Change"],
                            detail={"EndpointName": [endpoint], "EndpointStatus": ENDPOINT_STATES}),
                        targets=[targets.SqsQueue(self.queue, **into_queue)])
            events.Rule(self, f"{name}Reconcile", description=f"IVADAS {kind}: compare registry and endpoint",
                        schedule=events.Schedule.rate(Duration.minutes(config.reconcile_minutes)),
                        targets=[targets.SqsQueue(self.queue, **into_queue, message=events.RuleTargetInput.from_object(
                            {"source": "ivadas.deploy", "detail-type": RECONCILE_EVENT, "detail": {"kind": kind}}))])

    # ------------------------------------------------------------------------------ alarms

    def _rollback_alarms(self, kind: str, endpoint: str) -> list[cloudwatch.Alarm]:
        """5xx errors and p90 model latency of the endpoint: either one rolls a blue/green update back."""
        errors_name, latency_name = rollback_alarm_names(endpoint)
        name = kind_id(kind)
        return [
            self._endpoint_alarm(f"{name}5xx", errors_name, endpoint, "Invocation5XXErrors", "Sum", 5, 2,
                                 f"{kind} endpoint returns server errors (rolls back a blue/green update)"),
            self._endpoint_alarm(f"{name}Latency", latency_name, endpoint, "ModelLatency", "p90", 2_000_000, 3,
                                 f"{kind} endpoint p90 model latency above 2 s (rolls back a blue/green update)"),
        ]

    def _endpoint_alarm(self, construct_id, name, endpoint, metric, statistic, threshold, periods, description):
        return cloudwatch.Alarm(
            self, construct_id, alarm_name=name, evaluation_periods=periods, threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING, alarm_description=description,
            metric=cloudwatch.Metric(namespace="AWS/SageMaker", metric_name=metric, statistic=statistic, period=Duration.minutes(1),
                                     dimensions_map={"EndpointName": endpoint, "VariantName": "AllTraffic"}))

    def deploy_metric(self, name: str, statistic: str = "Sum", period: Duration = Duration.minutes(5)) -> cloudwatch.Metric:
        """A metric the deploy Lambda emits (embedded format; Powertools adds the `service` dimension)."""
        return cloudwatch.Metric(namespace=METRICS_NAMESPACE, metric_name=name, statistic=statistic, period=period,
                                 dimensions_map={"service": DEPLOY_SERVICE})

    def _deployment_alarms(self, config) -> list[cloudwatch.Alarm]:
        def alarm(construct_id, suffix, metric, description, periods=1, threshold=1):
            return cloudwatch.Alarm(
                self, construct_id, alarm_name=f"{config.prefix}-{suffix}", metric=metric, threshold=threshold,
                evaluation_periods=periods, comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING, alarm_description=description)

        # A deployment takes provisioning + canary + bake (under deploymentTimeoutSeconds); registry and
        # endpoint disagreeing for twice that long means a deployment is stuck or keeps failing.
        period = Duration.minutes(config.reconcile_minutes)
        mismatch_periods = max(2, -(-2 * config.deployment_timeout_seconds // (60 * config.reconcile_minutes)))
        return [
            alarm("DeadLettersAlarm", "deployment-dead-letters",
                  self.dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(5), statistic="Maximum"),
                  "a deployment could not be completed within its retries (see the deploy Lambda's logs)"),
            alarm("DeploymentErrorsAlarm", "deployment-errors", self.deploy_metric("DeploymentErrors"),
                  "a deployment step failed (retried from the queue; see the deploy Lambda's logs)"),
            alarm("RolledBackAlarm", "deployment-rolled-back", self.deploy_metric("DeploymentRolledBack"),
                  "SageMaker rolled a blue/green deployment back; the version was rejected in the registry with the reason"),
            alarm("FailedAlarm", "deployment-failed", self.deploy_metric("DeploymentFailed"),
                  "an endpoint failed to come up; its version was rejected in the registry and the endpoint deleted"),
            alarm("MismatchAlarm", "served-version-mismatch", self.deploy_metric("ServedVersionMismatch", "Maximum", period),
                  "the registry's served version and the endpoint's version have disagreed for longer than a deployment takes",
                  periods=mismatch_periods),
        ]

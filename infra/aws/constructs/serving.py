"""Serving: one real-time endpoint per model kind, kept on the served version by the deploy Lambda.

Endpoints are created by `lambda/deploy` at the first approval (nothing is deployed before), then
updated blue/green with automatic rollback on the alarms defined here.
"""

import json
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from inference.kinds import MODEL_KINDS

ROOT = Path(__file__).resolve().parents[3]


def rollback_alarm_names(endpoint: str) -> list[str]:
    return [f"{endpoint}-5xx", f"{endpoint}-model-latency"]


def powertools_layer(scope: Construct, construct_id: str, version: int) -> lambda_.ILayerVersion:
    """AWS's public Powertools for AWS Lambda (Python) v3 layer (it carries pydantic too)."""
    stack = Stack.of(scope)
    arn = f"arn:{stack.partition}:lambda:{stack.region}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:{version}"
    return lambda_.LayerVersion.from_layer_version_arn(scope, construct_id, arn)


class Serving(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, storage, images, powertools_version: int):
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        sm_arn = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        self.endpoint_names = {kind: config.endpoint_name(kind) for kind in MODEL_KINDS}

        self.model_role = iam.Role(self, "ModelRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                                   description="IVADAS endpoints: read model bundles, write data capture")
        storage.artifacts.grant_read(self.model_role, "pipelines/*")
        storage.artifacts.grant_put(self.model_role, "data-capture/*")
        images.endpoint.repository.grant_pull(self.model_role)
        self.model_role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        self.model_role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:/aws/sagemaker/Endpoints/{config.prefix}-*"]))
        self.model_role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"],
                                                          conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}))

        self.alarms = {kind: self._rollback_alarms(kind, name) for kind, name in self.endpoint_names.items()}

        self.function = lambda_.Function(
            self, "DeployFunction", runtime=lambda_.Runtime.PYTHON_3_11, architecture=lambda_.Architecture.X86_64,
            handler="deploy_app.handler", code=lambda_.Code.from_asset(str(ROOT / "lambda" / "deploy")),
            layers=[powertools_layer(self, "PowertoolsLayer", powertools_version)], timeout=Duration.minutes(2),
            memory_size=256, tracing=lambda_.Tracing.ACTIVE, description="IVADAS: approved model version → endpoint",
            log_group=logs.LogGroup(self, "DeployLogs", retention=logs.RetentionDays.THREE_MONTHS),
            environment={
                "ENDPOINT_PREFIX": config.prefix, "MODEL_PACKAGE_GROUP_PREFIX": config.pipeline_name,
                "SAGEMAKER_ROLE_ARN": self.model_role.role_arn, "ENDPOINT_INSTANCE_TYPE": config.endpoint_instance_type,
                "ENDPOINT_MAX_INSTANCES": str(config.endpoint_max_instances),
                "DATA_CAPTURE_URI": f"s3://{storage.artifacts.bucket_name}/data-capture",
                "KMS_KEY_ID": storage.key.key_arn,
                "ROLLBACK_ALARMS": json.dumps({kind: rollback_alarm_names(name) for kind, name in self.endpoint_names.items()}),
                "POWERTOOLS_SERVICE_NAME": "ivadas-deploy",
            },
        )
        endpoints = [f"{sm_arn}:{kind}/{config.prefix}-*" for kind in ("endpoint", "endpoint-config", "model")]
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:CreateEndpointConfig",
                     "sagemaker:DescribeEndpointConfig", "sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint",
                     "sagemaker:DescribeEndpoint", "sagemaker:ListTags", "sagemaker:AddTags"],
            resources=endpoints))
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:ListModelPackages", "sagemaker:DescribeModelPackage"],
            resources=[f"{sm_arn}:model-package-group/{config.pipeline_name}-*", f"{sm_arn}:model-package/{config.pipeline_name}-*/*"]))
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=[self.model_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["application-autoscaling:RegisterScalableTarget", "application-autoscaling:PutScalingPolicy",
                     "application-autoscaling:DescribeScalableTargets"],
            resources=[f"arn:{stack.partition}:application-autoscaling:{stack.region}:{stack.account}:scalable-target/*"]))
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["iam:CreateServiceLinkedRole"],
            resources=[f"arn:{stack.partition}:iam::{stack.account}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/*"],
            conditions={"StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}}))
        storage.artifacts.grant_read(self.function, "pipelines/*")
        storage.key.grant_encrypt_decrypt(self.function)

        events.Rule(self, "ApprovalRule", description="IVADAS model package approvals and rejections",
                    event_pattern=events.EventPattern(
                        source=["aws.sagemaker"], detail_type=["SageMaker Model Package State Change"],
                        detail={"ModelPackageGroupName": [config.model_package_group(k) for k in MODEL_KINDS],
                                "ModelApprovalStatus": ["Approved", "Rejected"]}),
                    targets=[targets.LambdaFunction(self.function, retry_attempts=2)])
        events.Rule(self, "EndpointInServiceRule", description="IVADAS endpoints in service: register auto-scaling",
                    event_pattern=events.EventPattern(
                        source=["aws.sagemaker"], detail_type=["SageMaker Endpoint State Change"],
                        detail={"EndpointName": list(self.endpoint_names.values()), "EndpointStatus": ["IN_SERVICE"]}),
                    targets=[targets.LambdaFunction(self.function, retry_attempts=2)])

    def _rollback_alarms(self, kind: str, endpoint: str) -> list[cloudwatch.Alarm]:
        """5xx errors and p90 model latency of the endpoint: either one rolls a blue/green update back."""
        errors_name, latency_name = rollback_alarm_names(endpoint)
        return [
            self._endpoint_alarm(f"{kind.title()}5xx", errors_name, endpoint, "Invocation5XXErrors", "Sum", 5, 2,
                                 f"{kind} endpoint returns server errors (rolls back a blue/green update)"),
            self._endpoint_alarm(f"{kind.title()}Latency", latency_name, endpoint, "ModelLatency", "p90", 2_000_000, 3,
                                 f"{kind} endpoint p90 model latency above 2 s (rolls back a blue/green update)"),
        ]

    def _endpoint_alarm(self, construct_id, name, endpoint, metric, statistic, threshold, periods, description):
        return cloudwatch.Alarm(
            self, construct_id, alarm_name=name, evaluation_periods=periods, threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING, alarm_description=description,
            metric=cloudwatch.Metric(namespace="AWS/SageMaker", metric_name=metric, statistic=statistic, period=Duration.minutes(1),
                                     dimensions_map={"EndpointName": endpoint, "VariantName": "AllTraffic"}))

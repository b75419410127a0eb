"""Drift monitoring on AWS: what SageMaker Model Monitor does, with IVADAS's own statistics.

EventBridge Scheduler starts a SageMaker Processing job every `driftMonitorRateHours`, and the API's
POST /monitoring/run starts one now, both from one definition (the CreateProcessingJob request without
its name, kept in an SSM parameter for the API), running `python -m pipelines.monitoring.job` in the
training image (the same code as `ivadas monitor`): it reads the period's verdicts from the inspection
table and, for requests made straight to an endpoint, from the endpoints' data capture, people's
confirmations from the feedback markers in the data bucket, and each model version's training
reference beside its evaluation, and
writes `summary.json` and `report.html` to `monitoring/latest/` of the artifacts bucket (the API's
GET /monitoring and the UI read them). It publishes per-class metrics in `IVADAS/Monitoring`
(`DriftDetected`, `ScoreDriftPSI`, `InputDriftPSI`, `SensorShiftSigma`, `SensorSpreadRatio`, `AnomalyRate`,
`ReviewedPrecision`, `ReviewedRecall`, `Verdicts`); an alarm per configured class and per sensor asset
named in `driftAlarmAssets`, "drift on class X", watches `DriftDetected` and notifies the alarm topic.

Least privilege: the job's role queries the inspection table, reads evaluations under `pipelines/`,
data capture under `data-capture/` and feedback markers, writes under `monitoring/`, describes this
deployment's model versions and puts metrics in its own namespace; the schedule's role and the API's
may start processing jobs named after this deployment's monitoring and pass that one role.
"""

import json

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from pipelines.monitoring.cloudwatch import DRIFT_METRIC, NAMESPACE

OUTPUT_PREFIX = "monitoring/latest"
FEEDBACK_PREFIX = "datasets/feedback/inspection/"
#: Where the deploy Lambda points the endpoints' data capture (infra/aws/constructs/serving.py).
CAPTURE_PREFIX = "data-capture"
JOB_TIMEOUT_S = 3600
#: SageMaker job names are at most 63 characters; Scheduler's execution id takes 36 of them.
JOB_NAME_LIMIT = 63
EXECUTION_ID_LENGTH = 36


def job_name_prefix(prefix: str) -> str:
    long = f"{prefix}-monitor-"
    return long if len(long) + EXECUTION_ID_LENGTH <= JOB_NAME_LIMIT else f"{prefix}-m-"


def alarm_name(config, class_name: str) -> str:
    return f"{config.prefix}-drift-{class_name}"


class DriftMonitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, storage, images, api, alarm_topic):
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        sagemaker_arn = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        self.role = iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                             description=f"{config.prefix}: the scheduled drift-monitoring Processing job")
        self._job_permissions(config, storage, images, api, sagemaker_arn)
        self.job_prefix = job_name_prefix(config.prefix)
        self.rate = Duration.hours(config.drift_monitor_rate_hours)
        request = self._processing_job(config, storage, images, api)
        # the same request for a run started now (POST /monitoring/run), which names its job itself
        self.job_definition = ssm.StringParameter(
            self, "JobDefinition", parameter_name=f"/{config.prefix}/monitoring/processing-job",
            description=f"{config.prefix}: the drift-monitoring Processing job the schedule and POST /monitoring/run start",
            string_value=stack.to_json_string({"namePrefix": self.job_prefix, "request": request}))
        self.sagemaker_arn = sagemaker_arn
        self.schedule_role = iam.Role(
            self, "ScheduleRole", description=f"{config.prefix}: EventBridge Scheduler starts the drift-monitoring job",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com", conditions={"StringEquals": {
                "aws:SourceAccount": stack.account}}))
        self.schedule = scheduler.Schedule(
            self, "Schedule", description="IVADAS drift monitoring (SageMaker Processing)",
            schedule=scheduler.ScheduleExpression.rate(self.rate),
            target=targets.Universal(
                service="sagemaker", action="createProcessingJob",
                input=scheduler.ScheduleTargetInput.from_object(
                    {"ProcessingJobName": f"{self.job_prefix}{scheduler.ContextAttribute.execution_id}", **request}),
                role=self.schedule_role, retry_attempts=2, max_event_age=Duration.hours(1),
                policy_statements=[
                    iam.PolicyStatement(actions=["sagemaker:CreateProcessingJob", "sagemaker:AddTags"],
                                        resources=[f"{sagemaker_arn}:processing-job/{self.job_prefix}*"]),
                    iam.PolicyStatement(actions=["iam:PassRole"], resources=[self.role.role_arn],
                                        conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}),
                ]),
        )
        self.alarms = self._alarms(config, alarm_topic)

    def add_dashboard_row(self, dashboard: cloudwatch.Dashboard) -> None:
        """Drift per class (every class that reports, found by SEARCH), anomaly rate and reviewed quality."""
        seconds = int(self.rate.to_seconds())

        def every_class(metric: str, statistic: str = "Maximum") -> cloudwatch.MathExpression:
            return cloudwatch.MathExpression(
                expression=f"SEARCH('{{{NAMESPACE},ClassName}} MetricName=\"{metric}\"', '{statistic}', {seconds})",
                label="", period=self.rate)

        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Drift detected per class (1 = alarm)", left=[every_class(DRIFT_METRIC)]),
            cloudwatch.GraphWidget(title="Drift size per class", left=[every_class("ScoreDriftPSI"), every_class("InputDriftPSI")],
                                   right=[every_class("SensorShiftSigma"), every_class("SensorSpreadRatio")]),
            cloudwatch.GraphWidget(title="Anomaly rate and reviewed quality per class",
                                   left=[every_class("AnomalyRate"), every_class("ReviewedPrecision"), every_class("ReviewedRecall")]),
        )

    def serve_reports(self, function, storage) -> None:
        """GET /monitoring and /monitoring/report read the latest run (lambda/predict/routes_monitoring.py)."""
        function.add_environment("MONITORING_STORE", f"s3://{storage.artifacts.bucket_name}/monitoring")
        # a policy of its own, so that the function's other statements are not merged with these
        self.report_reader = iam.Policy(self, "ReportReader", statements=[
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[storage.artifacts.arn_for_objects(f"{OUTPUT_PREFIX}/*")]),
            # listing lets S3 answer 404 for a report not written yet, instead of 403
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[storage.artifacts.bucket_arn],
                                conditions={"StringLike": {"s3:prefix": [f"{OUTPUT_PREFIX}/*"]}}),
            # the key only through S3: the API may not decrypt anything else with it
            iam.PolicyStatement(actions=["kms:Decrypt"], resources=[storage.key.key_arn],
                                conditions={"StringEquals": {"kms:ViaService": f"s3.{Stack.of(self).region}.amazonaws.com"}}),
        ])
        self.report_reader.attach_to_role(function.role)
        self._start_runs(function)

    def _start_runs(self, function) -> None:
        """POST /monitoring/run starts the job now: the definition's parameter read, jobs under this
        deployment's monitoring prefix created (and read back, when a start whose answer was lost is
        refused as ResourceInUse), and only the job's role passed, to SageMaker only."""
        function.add_environment("MONITORING_JOB_PARAMETER", self.job_definition.parameter_name)
        self.run_starter = iam.Policy(self, "RunStarter", statements=[
            iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[self.job_definition.parameter_arn]),
            iam.PolicyStatement(actions=["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob"],
                                resources=[f"{self.sagemaker_arn}:processing-job/{self.job_prefix}*"]),
            iam.PolicyStatement(actions=["iam:PassRole"], resources=[self.role.role_arn],
                                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}),
        ])
        self.run_starter.attach_to_role(function.role)

    def _job_permissions(self, config, storage, images, api, sagemaker_arn: str) -> None:
        stack = Stack.of(self)
        role = self.role
        images.training.repository.grant_pull(role)
        role.add_to_policy(iam.PolicyStatement(actions=["dynamodb:Query"], resources=[api.table.table_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"],
                                               resources=[storage.artifacts.arn_for_objects("pipelines/*")]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"],
                                               resources=[storage.artifacts.arn_for_objects(f"{OUTPUT_PREFIX}/*")]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"],
                                               resources=[storage.data.arn_for_objects(f"{FEEDBACK_PREFIX}*")]))
        # the endpoints' data capture: calls made to an endpoint directly, not through the API
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"],
                                               resources=[storage.artifacts.arn_for_objects(f"{CAPTURE_PREFIX}/*")]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[storage.artifacts.bucket_arn],
                                               conditions={"StringLike": {"s3:prefix": [f"{CAPTURE_PREFIX}/*"]}}))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[storage.data.bucket_arn],
                                               conditions={"StringLike": {"s3:prefix": [f"{FEEDBACK_PREFIX}*"]}}))
        role.add_to_policy(iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[storage.key.key_arn]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["sagemaker:DescribeModelPackage"],
            resources=[f"{sagemaker_arn}:model-package/{config.pipeline_name}-*/*"]))
        # ListModelPackages has no resource-level permission; PutMetricData is kept to this namespace
        role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"]))
        role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"],
                                               conditions={"StringEquals": {"cloudwatch:namespace": NAMESPACE}}))
        role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:/aws/sagemaker/ProcessingJobs*"]))

    def _processing_job(self, config, storage, images, api) -> dict:
        stack = Stack.of(self)
        """CreateProcessingJob's request, but for the job's name (each starter gives its own)."""
        return {
            "RoleArn": self.role.role_arn,
            "AppSpecification": {"ImageUri": images.training.image_uri,
                                 "ContainerEntrypoint": ["python", "-m", "pipelines.monitoring.job"]},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": config.processing_instance_type,
                                                      "VolumeSizeInGB": 10}},
            "ProcessingOutputConfig": {
                "KmsKeyId": storage.key.key_arn,
                "Outputs": [{"OutputName": "report", "S3Output": {
                    "S3Uri": f"s3://{storage.artifacts.bucket_name}/{OUTPUT_PREFIX}",
                    "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
            "StoppingCondition": {"MaxRuntimeInSeconds": JOB_TIMEOUT_S},
            "Environment": {
                "INSPECTION_TABLE": api.table.table_name, "DATA_BUCKET": storage.data.bucket_name,
                "CAPTURE_S3_URI": f"s3://{storage.artifacts.bucket_name}/{CAPTURE_PREFIX}",
                "MONITOR_LOOKBACK_HOURS": str(config.drift_monitor_rate_hours),
                "MONITOR_THRESHOLDS": json.dumps(config.drift_thresholds, sort_keys=True),
                "AWS_DEFAULT_REGION": stack.region,
            },
        }

    def _alarms(self, config, topic) -> list[cloudwatch.Alarm]:
        notify = actions.SnsAction(topic)
        alarms = []
        for class_name in dict.fromkeys(config.classes + config.drift_alarm_assets):
            metric = cloudwatch.Metric(namespace=NAMESPACE, metric_name=DRIFT_METRIC, dimensions_map={"ClassName": class_name},
                                       statistic="Maximum", period=self.rate)
            alarm = cloudwatch.Alarm(
                self, f"Drift{''.join(part.capitalize() for part in class_name.replace('_', '-').split('-'))}",
                alarm_name=alarm_name(config, class_name), metric=metric, threshold=1, evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                # a class without traffic in a period has no value: no evidence of drift either
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"drift on class {class_name}: its anomaly scores or inputs moved away from training "
                                  f"(monitoring/latest/report.html in the artifacts bucket says which)")
            alarm.add_alarm_action(notify)
            alarms.append(alarm)
        return alarms

"""The sensor feed on AWS: what Lookout for Equipment's inference scheduler did.

EventBridge Scheduler runs `lambda/predict/sensor_feed.py` (in the predict Lambda's asset, so it
shares the endpoint client and the inspection log) every `sensorFeedRateMinutes`. A run scores the
CSV files waiting under `sensors/<asset>/incoming/` of the data bucket through the sensor endpoint,
writes `sensors/<asset>/results/` and `state.json`, moves each file to `processed/` or `failed/`,
records every scored file in the inspection log and counts what it did (`FilesScored`,
`FilesFailed`, `FilesWaiting`).

- One run at a time (reserved concurrency 1), so two runs never score the same file.
- Scheduler invokes the function asynchronously. What Scheduler cannot hand to Lambda (the function
  or its permission gone, Lambda refusing the call) is retried within one interval and then kept in
  a dead-letter queue, which has an alarm. A run that fails is not retried by Lambda: the next run
  finds the same files, and the function's errors have an alarm. An invocation that waits behind a
  run still in progress expires after one interval, since the next run does its work.
- Least privilege: the `sensors/` prefix of the data bucket only (listing conditioned on
  `s3:prefix`, which also lets S3 answer 404 rather than 403 for an object not there yet), the data
  key only through S3, the inspection key only through DynamoDB (for the inspection table it
  encrypts), the sensor kinds' endpoints, and PutItem on the inspection table.
"""

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from inference.kinds import kind_info

from .serving import METRICS_NAMESPACE, powertools_layer

FEED_SERVICE = "ivadas-sensor-feed"
#: Where sensor files, results and the feed's state live in the data bucket (lambda/predict/sensor_feed.py).
SENSOR_PREFIX = "sensors/"
#: The counts one run emits (lambda/predict/sensor_feed.py `count_files`).
FILE_METRICS = ("FilesScored", "FilesFailed", "FilesWaiting")
#: SageMaker's own limit for a real-time invocation; the feed answers no API Gateway, so it may wait that long
#: (never past its run: the endpoint client takes the remaining time into account).
ENDPOINT_TIMEOUT_S = 60
#: Scheduler's attempts to hand a run to Lambda before the event goes to the dead-letter queue.
DELIVERY_RETRIES = 3


class SensorStore:
    """The `sensors/` prefix of the data bucket as the feed and the API reach it (`SENSOR_STORE`,
    lambda/predict/object_store.py), and the statements that reach it."""

    def __init__(self, storage):
        self.bucket, self.key = storage.data, storage.key

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket.bucket_name}"

    def _statements(self, scope: Construct, object_actions: list[str], key_actions: list[str]) -> list[iam.PolicyStatement]:
        region = Stack.of(scope).region
        return [
            # ListObjectsV2 under sensors/ only; S3 also asks for this grant (with the key as s3:prefix)
            # before it says that an object is missing instead of refusing the request.
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn],
                                conditions={"StringLike": {"s3:prefix": [f"{SENSOR_PREFIX}*"]}}),
            iam.PolicyStatement(actions=object_actions, resources=[self.bucket.arn_for_objects(f"{SENSOR_PREFIX}*")]),
            iam.PolicyStatement(actions=key_actions, resources=[self.key.key_arn],
                                conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}),
        ]

    def grant_read(self, function: lambda_.Function) -> None:
        for statement in self._statements(function, ["s3:GetObject"], ["kms:Decrypt"]):
            function.add_to_role_policy(statement)

    def grant_read_write(self, function: lambda_.Function) -> None:
        """Read, write and move (copy + delete) under sensors/; objects are written with the data key."""
        for statement in self._statements(function, ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                                          ["kms:Decrypt", "kms:GenerateDataKey"]):
            function.add_to_role_policy(statement)


class SensorFeed(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, storage, serving, api, powertools_version: int):
        super().__init__(scope, construct_id)
        self.config = config
        self.store = SensorStore(storage)
        self.sensor_kinds = [kind for kind in serving.endpoint_names if kind_info(kind).modality == "sensors"]
        self.interval = Duration.minutes(config.sensor_feed_rate_minutes)
        self.function = lambda_.Function(
            self, "FeedFunction", runtime=lambda_.Runtime.PYTHON_3_11, architecture=lambda_.Architecture.X86_64,
            handler="sensor_feed.handler", code=api.code,
            layers=[powertools_layer(self, "PowertoolsLayer", powertools_version)], memory_size=1024,
            timeout=Duration.seconds(config.sensor_feed_timeout_seconds), reserved_concurrent_executions=1,
            tracing=lambda_.Tracing.ACTIVE, description="IVADAS: scores sensor files waiting under sensors/<asset>/incoming/",
            log_group=logs.LogGroup(self, "FeedLogs", retention=logs.RetentionDays.THREE_MONTHS),
            # a failed run is not retried (the next run finds the same files); a waiting one expires with its interval
            retry_attempts=0, max_event_age=self.interval,
            environment={
                **serving.model_environment,
                "SENSOR_STORE": self.store.uri, "SENSOR_STORE_KMS_KEY": storage.key.key_arn,
                "INSPECTION_LOG": "dynamodb", "INSPECTION_TABLE": api.table.table_name,
                "ENDPOINT_TIMEOUT_S": str(ENDPOINT_TIMEOUT_S),
                "POWERTOOLS_SERVICE_NAME": FEED_SERVICE, "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
        )
        self.store.grant_read_write(self.function)
        self.function.add_to_role_policy(iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"],
                                                             resources=serving.endpoint_arns(self.sensor_kinds)))
        self.function.add_to_role_policy(iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[api.table.table_arn]))
        # The inspection table is encrypted with the inspection key: DynamoDB decrypts the table key as the caller.
        storage.grant_inspection_log(self.function)
        self._schedule(config)

    def _schedule(self, config) -> None:
        stack = Stack.of(self)
        self.dead_letters = sqs.Queue(self, "ScheduleDeadLetters", encryption=sqs.QueueEncryption.SQS_MANAGED,
                                      enforce_ssl=True, retention_period=Duration.days(14))
        self.group = scheduler.ScheduleGroup(self, "Schedules", schedule_group_name=config.prefix,
                                             removal_policy=RemovalPolicy.DESTROY)
        # Confused-deputy guard: only Scheduler, for schedules of this group in this account, may use the role.
        self.schedule_role = iam.Role(
            self, "ScheduleRole", description=f"{config.prefix}: EventBridge Scheduler runs the sensor feed",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com", conditions={"StringEquals": {
                "aws:SourceAccount": stack.account, "aws:SourceArn": self.group.schedule_group_arn}}))
        self.schedule_role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"],
                                                             resources=[self.function.function_arn]))
        self.schedule_role.add_to_policy(iam.PolicyStatement(actions=["sqs:SendMessage"],
                                                             resources=[self.dead_letters.queue_arn]))
        self.schedule = scheduler.Schedule(
            self, "Schedule", schedule_name=f"{config.prefix}-sensor-feed", schedule_group=self.group,
            schedule=scheduler.ScheduleExpression.rate(self.interval), enabled=config.sensor_feed_enabled,
            description="IVADAS: score the sensor files waiting under sensors/<asset>/incoming/",
            target=targets.LambdaInvoke(
                self.function, input=scheduler.ScheduleTargetInput.from_object({}),
                # the statements above, exactly: the target's own grants would add every version of the function
                role=self.schedule_role.without_policy_updates(),
                dead_letter_queue=self.dead_letters, retry_attempts=DELIVERY_RETRIES, max_event_age=self.interval))
        self.schedule.node.add_dependency(self.group)  # the schedule names its group; CloudFormation must create it first

    def metric(self, name: str, statistic: str = "Sum") -> cloudwatch.Metric:
        """A count the feed emits per run (embedded format; Powertools adds the `service` dimension)."""
        return cloudwatch.Metric(namespace=METRICS_NAMESPACE, metric_name=name, statistic=statistic,
                                 period=self.period, dimensions_map={"service": FEED_SERVICE})

    @property
    def period(self) -> Duration:
        """An alarm period that holds at least one run."""
        return Duration.minutes(max(5, self.config.sensor_feed_rate_minutes))

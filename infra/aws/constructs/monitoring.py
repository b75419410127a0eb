"""Monitoring: one dashboard for endpoints, API, deployments, the sensor feed, pipeline and anomaly rates;
alarms to an SNS topic.

The topic is encrypted with a key of its own whose policy lets CloudWatch (and only for this
deployment's alarms) use it: without `kms:GenerateDataKey*` and `kms:Decrypt` for
`cloudwatch.amazonaws.com`, alarms publishing to an encrypted topic are dropped without a trace.
"""

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from .sensor_feed import FILE_METRICS

#: The dimensions the predict Lambda gives its per-class counts: its own two, plus the `service`
#: dimension Powertools adds to every metric (POWERTOOLS_SERVICE_NAME). A SEARCH schema must list
#: exactly the dimension set a metric has, or it finds nothing.
ANOMALY_SCHEMA = "{IVADAS,class_name,model,service}"


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, storage, serving, api, sensor_feed):
        super().__init__(scope, construct_id)
        self.topic = self._alarm_topic(config)
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self.alarms = self._alarms(config, serving, api) + self._sensor_feed_alarms(config, sensor_feed)
        notify = actions.SnsAction(self.topic)
        for alarm in self.alarms:
            alarm.add_alarm_action(notify)
        self.dashboard = self._dashboard(config, serving, api)
        self._sensor_feed_row(sensor_feed)

    def alarm_arn_pattern(self, config) -> str:
        stack = Stack.of(self)
        return f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:{config.prefix}-*"

    def _alarm_topic(self, config) -> sns.Topic:
        stack = Stack.of(self)
        cloudwatch_principal = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        # Confused-deputy guard: CloudWatch acts only for this account's alarms named after this deployment.
        from_our_alarms = {"StringEquals": {"aws:SourceAccount": stack.account},
                           "ArnLike": {"aws:SourceArn": self.alarm_arn_pattern(config)}}
        self.key = kms.Key(self, "AlarmTopicKey", enable_key_rotation=True,
                           description=f"{config.prefix}: alarm notifications (SNS), usable by CloudWatch")
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish", principals=[cloudwatch_principal],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"], conditions=from_our_alarms))
        topic = sns.Topic(self, "Alarms", display_name=f"{config.prefix} alarms", master_key=self.key, enforce_ssl=True)
        topic.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish", principals=[cloudwatch_principal], actions=["sns:Publish"],
            resources=[topic.topic_arn], conditions=from_our_alarms))
        return topic

    def _alarms(self, config, serving, api) -> list[cloudwatch.Alarm]:
        alarms = [a for kind_alarms in serving.alarms.values() for a in kind_alarms] + list(serving.deployment_alarms)
        alarms.append(cloudwatch.Alarm(self, "Api5xx", alarm_name=f"{config.prefix}-api-5xx", threshold=5, evaluation_periods=1,
                                       metric=api.rest_api.metric_server_error(period=Duration.minutes(5), statistic="Sum"),
                                       treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                                       alarm_description="the API answered 5xx"))
        for name, function in (("Predict", api.function), ("Deploy", serving.function)):
            alarms.append(cloudwatch.Alarm(self, f"{name}Errors", alarm_name=f"{config.prefix}-{name.lower()}-lambda-errors",
                                           threshold=1, evaluation_periods=1,
                                           metric=function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
                                           treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                                           alarm_description=f"the {name.lower()} Lambda failed"))
        alarms.append(cloudwatch.Alarm(self, "PipelineFailed", alarm_name=f"{config.prefix}-pipeline-failed", threshold=1,
                                       evaluation_periods=1, metric=self._pipeline_metric(config, "ExecutionFailed"),
                                       treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                                       alarm_description="a training pipeline execution failed"))
        return alarms

    def _sensor_feed_alarms(self, config, feed) -> list[cloudwatch.Alarm]:
        """A failed run, a file the feed could not score, a run Scheduler could not start, and (while the
        schedule is on) no run at all for three intervals."""
        def alarm(construct_id, suffix, metric, description, **options):
            options = {"threshold": 1, "evaluation_periods": 1, "treat_missing_data": cloudwatch.TreatMissingData.NOT_BREACHING,
                       "comparison_operator": cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD, **options}
            return cloudwatch.Alarm(self, construct_id, alarm_name=f"{config.prefix}-{suffix}", metric=metric,
                                    alarm_description=description, **options)

        alarms = [
            alarm("SensorFeedErrors", "sensor-feed-errors", feed.function.metric_errors(period=feed.period, statistic="Sum"),
                  "a sensor feed run failed (its files wait for the next run; see the feed's logs)"),
            alarm("SensorFilesFailed", "sensor-files-failed", feed.metric("FilesFailed"),
                  "a sensor file could not be scored: it is under sensors/<asset>/failed/ beside an .error.json saying why"),
            alarm("SensorFeedDeadLetters", "sensor-feed-dead-letters",
                  feed.dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(5), statistic="Maximum"),
                  "EventBridge Scheduler could not start a sensor feed run (the event is in the schedule's dead-letter queue)"),
        ]
        if config.sensor_feed_enabled:
            alarms.append(alarm(
                "SensorFeedStopped", "sensor-feed-stopped",
                feed.function.metric_invocations(period=feed.interval, statistic="Sum"),
                "the sensor feed has not run for three intervals although its schedule is on",
                threshold=1, evaluation_periods=3, datapoints_to_alarm=3,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING))
        return alarms

    def _sensor_feed_row(self, feed) -> None:
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Sensor files per run", left=[feed.metric(name) for name in FILE_METRICS]),
            cloudwatch.GraphWidget(title="Sensor feed runs", left=[
                feed.function.metric_invocations(), feed.function.metric_errors(), feed.function.metric_throttles(),
                feed.function.metric("AsyncEventsDropped", statistic="Sum")],
                right=[feed.function.metric_duration(statistic="Maximum")]),
            cloudwatch.GraphWidget(title="Sensor feed schedule", left=[
                feed.group.metric_attempts(), feed.group.metric_target_errors(), feed.group.metric_sent_to_dlq(),
                feed.dead_letters.metric_approximate_number_of_messages_visible()]),
        )

    @staticmethod
    def _pipeline_metric(config, name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(namespace="AWS/Sagemaker/ModelBuildingPipeline", metric_name=name,
                                 dimensions_map={"PipelineName": config.pipeline_name}, statistic="Sum", period=Duration.hours(1))

    def _dashboard(self, config, serving, api) -> cloudwatch.Dashboard:
        def endpoint_metric(kind, name, statistic="Sum", namespace="AWS/SageMaker"):
            return cloudwatch.Metric(namespace=namespace, metric_name=name, statistic=statistic, period=Duration.minutes(5),
                                     dimensions_map={"EndpointName": serving.endpoint_names[kind], "VariantName": "AllTraffic"},
                                     label=f"{kind} {name}")

        def search(metric: str) -> str:
            return f"SEARCH('{ANOMALY_SCHEMA} MetricName=\"{metric}\"', 'Sum', 300)"

        kinds = list(serving.endpoint_names)
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{config.prefix}-overview")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Endpoint invocations", left=[endpoint_metric(k, "Invocations") for k in kinds]),
            cloudwatch.GraphWidget(title="Model latency p90 (µs)", left=[endpoint_metric(k, "ModelLatency", "p90") for k in kinds]),
            cloudwatch.GraphWidget(title="Endpoint 4xx / 5xx", left=[endpoint_metric(k, m) for k in kinds
                                                                    for m in ("Invocation4XXErrors", "Invocation5XXErrors")]),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Endpoint CPU / memory (%)", left=[
                endpoint_metric(k, m, "Average", "/aws/sagemaker/Endpoints") for k in kinds for m in ("CPUUtilization", "MemoryUtilization")]),
            cloudwatch.GraphWidget(title="Lambda errors and duration",
                                   left=[api.function.metric_errors(), serving.function.metric_errors()],
                                   right=[api.function.metric_duration(statistic="p90")]),
            cloudwatch.GraphWidget(title="API requests and errors",
                                   left=[api.rest_api.metric_count(), api.rest_api.metric_client_error(), api.rest_api.metric_server_error()]),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Anomalies per class and model", left=[cloudwatch.MathExpression(
                expression=search("Anomalies"), label="", period=Duration.minutes(5))]),
            cloudwatch.GraphWidget(title="Anomaly rate (%)", left=[cloudwatch.MathExpression(
                expression=f"100 * {search('Anomalies')} / {search('Inspections')}", label="anomaly rate %",
                period=Duration.minutes(5))]),
            cloudwatch.GraphWidget(title="Pipeline executions", left=[
                self._pipeline_metric(config, name) for name in ("ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed")]),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Deployments", left=[
                serving.deploy_metric(name) for name in ("DeploymentRolledBack", "DeploymentFailed", "DeploymentErrors")],
                right=[serving.deploy_metric("ServedVersionMismatch", "Maximum")]),
            cloudwatch.GraphWidget(title="Deployment queue", left=[
                serving.queue.metric_approximate_number_of_messages_visible(),
                serving.queue.metric_approximate_age_of_oldest_message(),
                serving.dead_letters.metric_approximate_number_of_messages_visible()]),
        )
        return dashboard

"""Monitoring: one dashboard for endpoints, API, pipeline and anomaly rates; alarms to an SNS topic."""

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, storage, serving, api):
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Alarms", display_name=f"{config.prefix} alarms", master_key=storage.key,
                               enforce_ssl=True)
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        notify = actions.SnsAction(self.topic)
        alarms = [a for kind_alarms in serving.alarms.values() for a in kind_alarms]
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
        pipeline_failures = cloudwatch.Metric(namespace="AWS/Sagemaker/ModelBuildingPipeline", metric_name="ExecutionFailed",
                                              dimensions_map={"PipelineName": config.pipeline_name}, statistic="Sum",
                                              period=Duration.hours(1))
        alarms.append(cloudwatch.Alarm(self, "PipelineFailed", alarm_name=f"{config.prefix}-pipeline-failed", threshold=1,
                                       evaluation_periods=1, metric=pipeline_failures,
                                       treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                                       alarm_description="a training pipeline execution failed"))
        for alarm in alarms:
            alarm.add_alarm_action(notify)

        def endpoint_metric(kind, name, statistic="Sum", namespace="AWS/SageMaker"):
            return cloudwatch.Metric(namespace=namespace, metric_name=name, statistic=statistic, period=Duration.minutes(5),
                                     dimensions_map={"EndpointName": serving.endpoint_names[kind], "VariantName": "AllTraffic"},
                                     label=f"{kind} {name}")

        kinds = list(serving.endpoint_names)
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{config.prefix}-overview")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Endpoint invocations", left=[endpoint_metric(k, "Invocations") for k in kinds]),
            cloudwatch.GraphWidget(title="Model latency p90 (µs)", left=[endpoint_metric(k, "ModelLatency", "p90") for k in kinds]),
            cloudwatch.GraphWidget(title="Endpoint 4xx / 5xx", left=[endpoint_metric(k, m) for k in kinds
                                                                    for m in ("Invocation4XXErrors", "Invocation5XXErrors")]),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Endpoint CPU / memory (%)", left=[
                endpoint_metric(k, m, "Average", "/aws/sagemaker/Endpoints") for k in kinds for m in ("CPUUtilization", "MemoryUtilization")]),
            cloudwatch.GraphWidget(title="Lambda errors and duration",
                                   left=[api.function.metric_errors(), serving.function.metric_errors()],
                                   right=[api.function.metric_duration(statistic="p90")]),
            cloudwatch.GraphWidget(title="API requests and errors",
                                   left=[api.rest_api.metric_count(), api.rest_api.metric_client_error(), api.rest_api.metric_server_error()]),
        )
        anomaly_rate = cloudwatch.MathExpression(
            expression="100 * SEARCH('{IVADAS,class_name,model} MetricName=\"Anomalies\"', 'Sum', 300) / "
                       "SEARCH('{IVADAS,class_name,model} MetricName=\"Inspections\"', 'Sum', 300)",
            label="anomaly rate %", period=Duration.minutes(5))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Anomalies per class and model", left=[cloudwatch.MathExpression(
                expression="SEARCH('{IVADAS,class_name,model} MetricName=\"Anomalies\"', 'Sum', 300)", label="",
                period=Duration.minutes(5))]),
            cloudwatch.GraphWidget(title="Anomaly rate (%)", left=[anomaly_rate]),
            cloudwatch.GraphWidget(title="Pipeline executions", left=[
                cloudwatch.Metric(namespace="AWS/Sagemaker/ModelBuildingPipeline", metric_name=name,
                                  dimensions_map={"PipelineName": config.pipeline_name}, statistic="Sum", period=Duration.hours(1))
                for name in ("ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed")]),
        )

"""Template assertions: the MLflow tracking server and the pipeline wired to it, the drift-monitoring
job's schedule and role, the "drift on class X" alarms, and the API reading the latest report."""

import json

import pytest
from aws_cdk.assertions import Match

from infra.aws.config import IvadasConfig
from pipelines.monitoring.cloudwatch import DRIFT_METRIC, NAMESPACE


def _one(template, kind: str, props: dict | None = None) -> tuple[str, dict]:
    found = template.find_resources(kind, {"Properties": props} if props else None)
    assert len(found) == 1, f"{kind}: {list(found)}"
    return next(iter(found.items()))


def _statements(template_json: dict, role_logical_id: str) -> list[dict]:
    statements = []
    for resource in template_json["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_logical_id} in resource["Properties"].get("Roles", []):
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_the_tracking_server_keeps_artifacts_under_mlflow_through_its_own_role(main_template, main_template_json):
    logical, server = _one(main_template, "AWS::SageMaker::MlflowTrackingServer")
    props = server["Properties"]
    assert props["TrackingServerName"] == "ivadas-dev-mlflow" and props["TrackingServerSize"] == "Small"
    assert props["AutomaticModelRegistration"] is False
    assert props["ArtifactStoreUri"] == {"Fn::Join": ["", ["s3://", {"Ref": Match.string_like_regexp("StorageArtifacts")}, "/mlflow"]]} \
        or "/mlflow" in json.dumps(props["ArtifactStoreUri"])
    role = props["RoleArn"]["Fn::GetAtt"][0]
    statements = _statements(main_template_json, role)
    objects = [s for s in statements if "s3:PutObject" in s["Action"]]
    assert objects and all("/mlflow/*" in json.dumps(s["Resource"]) for s in objects)
    assert main_template_json["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "sagemaker.amazonaws.com"}
    assert any(dependency.startswith("TrackingServerRoleDefaultPolicy") for dependency in server.get("DependsOn", []))


def test_the_pipeline_logs_to_the_server_and_may_use_it(main_template, main_template_json):
    _, pipeline = _one(main_template, "AWS::SageMaker::Pipeline")
    body = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    text, variables = body
    assert "placeholder" not in json.dumps(variables)
    assert '"MLFLOW_TRACKING_URI": "${MlflowTrackingServerArn}"' in text
    [server] = main_template.find_resources("AWS::SageMaker::MlflowTrackingServer")
    assert variables["MlflowTrackingServerArn"] == {"Fn::GetAtt": [server, "TrackingServerArn"]}
    definition = json.loads(text.replace("${!", "${"))
    steps = {step["Name"]: step for step in definition["Steps"]}
    for name in ("Train", "Evaluate"):
        assert steps[name]["Arguments"]["Environment"]["MLFLOW_TRACKING_URI"] == "${MlflowTrackingServerArn}"
    pipeline_role = pipeline["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    mlflow = [s for s in _statements(main_template_json, pipeline_role) if any(a.startswith("sagemaker-mlflow:")
                                                                               for a in _actions(s))]
    assert mlflow and all(s["Resource"] == {"Fn::GetAtt": [server, "TrackingServerArn"]} for s in mlflow)
    assert not any(a.endswith(":*") for s in mlflow for a in _actions(s))
    # what the steps' client calls (tracking.py: experiment by name or created, run, batches, end, reopen)
    granted = {a for s in mlflow for a in _actions(s)}
    assert {"sagemaker-mlflow:GetExperimentByName", "sagemaker-mlflow:CreateExperiment", "sagemaker-mlflow:CreateRun",
            "sagemaker-mlflow:LogBatch", "sagemaker-mlflow:UpdateRun", "sagemaker-mlflow:GetRun"} <= granted
    assert "sagemaker-mlflow:AccessUI" not in granted  # the UI is for people; it takes no resource but "*"


def _actions(statement) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_a_schedule_starts_the_monitoring_processing_job(main_template, main_template_json):
    config = IvadasConfig()
    schedules = [s["Properties"] for s in main_template.find_resources("AWS::Scheduler::Schedule").values()
                 if ":scheduler:::aws-sdk:sagemaker:createProcessingJob" in json.dumps(s["Properties"]["Target"]["Arn"])]
    assert len(schedules) == 1
    [schedule] = schedules
    assert schedule["ScheduleExpression"] == f"rate({config.drift_monitor_rate_hours} hours)"
    request = json.loads(schedule["Target"]["Input"]) if isinstance(schedule["Target"]["Input"], str) else None
    text = json.dumps(schedule["Target"]["Input"])
    assert "<aws.scheduler.execution-id>" in text and "ivadas-dev-monitor-" in text
    assert "pipelines.monitoring.job" in text and "monitoring/latest" in text
    assert "INSPECTION_TABLE" in text and "MONITOR_LOOKBACK_HOURS" in text
    if request:
        assert request["AppSpecification"]["ContainerEntrypoint"] == ["python", "-m", "pipelines.monitoring.job"]
    scheduler_role = schedule["Target"]["RoleArn"]["Fn::GetAtt"][0]
    statements = _statements(main_template_json, scheduler_role)
    start = next(s for s in statements if "sagemaker:CreateProcessingJob" in _actions(s))
    assert "processing-job/ivadas-dev-monitor-*" in json.dumps(start["Resource"])
    pass_role = next(s for s in statements if "iam:PassRole" in _actions(s))
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_the_job_role_reads_verdicts_and_references_and_writes_only_its_report(main_template_json):
    roles = [k for k, v in main_template_json["Resources"].items()
             if v["Type"] == "AWS::IAM::Role" and k.startswith("DriftMonitoringJobRole")]
    [role] = roles
    statements = _statements(main_template_json, role)
    by_action = {a: s for s in statements for a in _actions(s)}
    assert "dynamodb:Query" in by_action and "dynamodb:Scan" not in by_action
    assert "/monitoring/latest/*" in json.dumps(by_action["s3:PutObject"]["Resource"])
    assert by_action["cloudwatch:PutMetricData"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}
    assert "s3:DeleteObject" not in by_action


def test_one_drift_alarm_per_class_notifies_the_alarm_topic(main_template):
    config = IvadasConfig()
    alarms = main_template.find_resources("AWS::CloudWatch::Alarm", {"Properties": {"MetricName": DRIFT_METRIC}})
    by_name = {a["Properties"]["AlarmName"]: a["Properties"] for a in alarms.values()}
    assert set(by_name) == {f"ivadas-dev-drift-{c}" for c in config.classes}
    for class_name in config.classes:
        alarm = by_name[f"ivadas-dev-drift-{class_name}"]
        assert alarm["Namespace"] == NAMESPACE
        assert alarm["Dimensions"] == [{"Name": "ClassName", "Value": class_name}]
        assert alarm["AlarmDescription"].startswith(f"drift on class {class_name}")
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["Threshold"] == 1
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] and "Ref" in alarm["AlarmActions"][0]


def test_the_api_reads_the_latest_report(main_template, main_template_json):
    functions = main_template.find_resources("AWS::Lambda::Function", {"Properties": {
        "Environment": {"Variables": {"MONITORING_STORE": Match.any_value()}}}})
    assert len(functions) == 1
    reader = next(v for k, v in main_template_json["Resources"].items() if k.startswith("DriftMonitoringReportReader"))
    statements = reader["Properties"]["PolicyDocument"]["Statement"]
    gets = [s for s in statements if "s3:GetObject" in _actions(s)]
    assert gets and all("/monitoring/latest/*" in json.dumps(s["Resource"]) for s in gets)


@pytest.mark.parametrize("bad", ['{"classes": {"tiles": {"input_psi": "high"}}}', '{"defaults": {}}', "not json"])
def test_bad_drift_thresholds_stop_synth_with_the_reason(bad):
    with pytest.raises(ValueError, match="input_psi|unknown key|not JSON"):
        IvadasConfig(drift_thresholds=bad)


def test_the_monitoring_routes_reach_the_api_through_cloudfront(main_template, main_template_json):
    parts = {r["Properties"]["PathPart"] for r in main_template.find_resources("AWS::ApiGateway::Resource").values()}
    assert {"monitoring", "report", "run"} <= parts
    methods = [m["Properties"] for m in main_template.find_resources("AWS::ApiGateway::Method").values()]
    monitoring = {k for k, v in main_template_json["Resources"].items()
                  if v["Type"] == "AWS::ApiGateway::Resource" and v["Properties"]["PathPart"] in ("monitoring", "run")}
    assert any(m["HttpMethod"] == "POST" and m["ResourceId"].get("Ref") in monitoring for m in methods)
    [distribution] = main_template.find_resources("AWS::CloudFront::Distribution").values()
    patterns = [b["PathPattern"] for b in distribution["Properties"]["DistributionConfig"]["CacheBehaviors"]]
    assert "/monitoring*" in patterns


def test_sensor_assets_named_for_drift_alarms_are_read_like_classes():
    assert IvadasConfig(drift_alarm_assets="pump-1, pump-2").drift_alarm_assets == ("pump-1", "pump-2")
    assert IvadasConfig().drift_alarm_assets == ()


def test_the_dashboard_shows_drift_for_every_class(main_template_json):
    [dashboard] = [r for r in main_template_json["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert f"SEARCH('{{{NAMESPACE},ClassName}} MetricName=\\\\\\\"{DRIFT_METRIC}\\\\\\\"'" in body or (
        NAMESPACE in body and DRIFT_METRIC in body)
    assert "Drift detected per class" in body and "InputDriftPSI" in body and "SensorShiftSigma" in body


def test_the_drift_row_searches_for_what_the_monitoring_job_publishes(main_template_json):
    from pipelines.monitoring.cloudwatch import metric_data
    from tests.infra.test_monitoring import dashboard_searches

    summary = {"groups": [{"class_name": "tiles", "verdicts": 40, "anomaly_rate": 0.1, "alarms": [],
                           "score_drift": {"psi": 0.1}, "quality": {"precision": 1.0, "recall": 0.5},
                           "input_drift": {"kind": "images", "worst": "brightness", "statistics": {"brightness": {"psi": 0.2}}}},
                          {"class_name": "pump-1", "verdicts": 40, "anomaly_rate": 0.1, "alarms": [], "score_drift": None,
                           "quality": {"precision": None, "recall": None},
                           "input_drift": {"kind": "sensors", "worst": "pressure", "sensors": {"pressure": {"shift_sigma": 0.3, "spread_ratio": 1.1}}}}]}
    published = {(NAMESPACE, tuple(sorted(d["Name"] for d in m["Dimensions"])), m["MetricName"]) for m in metric_data(summary)}
    searches = [s for s in dashboard_searches(main_template_json) if s[0] == NAMESPACE]
    assert {metric for _, _, metric in searches} >= {DRIFT_METRIC, "InputDriftPSI", "SensorShiftSigma", "SensorSpreadRatio", "AnomalyRate"}
    for search in searches:
        assert search in published, (search, sorted(published))


def _job_definition(main_template_json) -> tuple[str, dict]:
    [(logical, parameter)] = [(k, v) for k, v in main_template_json["Resources"].items()
                              if v["Type"] == "AWS::SSM::Parameter" and v["Properties"]["Name"] == "/ivadas-dev/monitoring/processing-job"]
    return logical, parameter["Properties"]


def test_run_now_and_the_schedule_start_one_definition(main_template, main_template_json):
    """The parameter the API reads holds the schedule's CreateProcessingJob request but for the name
    (the schedule's ends in its execution id, the API's in its own); intrinsics resolved, both are JSON."""
    from tests.infra.deployment_harness import Resolver

    resolve = Resolver(main_template_json)
    _, parameter = _job_definition(main_template_json)
    definition = json.loads(resolve(parameter["Value"]))
    [schedule] = [s["Properties"] for s in main_template.find_resources("AWS::Scheduler::Schedule").values()
                  if "createProcessingJob" in json.dumps(s["Properties"]["Target"]["Arn"])]
    scheduled = json.loads(resolve(schedule["Target"]["Input"]))
    assert scheduled.pop("ProcessingJobName") == definition["namePrefix"] + "<aws.scheduler.execution-id>"
    assert scheduled == definition["request"] and definition["namePrefix"] == "ivadas-dev-monitor-"
    assert definition["request"]["Environment"]["CAPTURE_S3_URI"].endswith("/data-capture")


def test_the_api_may_start_monitoring_jobs_and_pass_only_the_jobs_role(main_template_json):
    logical, _ = _job_definition(main_template_json)
    functions = [v for v in main_template_json["Resources"].values() if v["Type"] == "AWS::Lambda::Function"
                 and "MONITORING_JOB_PARAMETER" in v["Properties"].get("Environment", {}).get("Variables", {})]
    [function] = functions
    assert function["Properties"]["Environment"]["Variables"]["MONITORING_JOB_PARAMETER"] == {"Ref": logical}
    starter = next(v for k, v in main_template_json["Resources"].items() if k.startswith("DriftMonitoringRunStarter"))
    assert starter["Properties"]["Roles"] == [{"Ref": function["Properties"]["Role"]["Fn::GetAtt"][0]}]
    by_action = {a: s for s in starter["Properties"]["PolicyDocument"]["Statement"] for a in _actions(s)}
    assert set(by_action) == {"ssm:GetParameter", "sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob",
                              "iam:PassRole"}
    assert logical in json.dumps(by_action["ssm:GetParameter"]["Resource"])
    for action in ("sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob"):
        assert by_action[action]["Resource"].endswith(":processing-job/ivadas-dev-monitor-*")
    job_role = next(k for k in main_template_json["Resources"] if k.startswith("DriftMonitoringJobRole"))
    assert by_action["iam:PassRole"]["Resource"] == {"Fn::GetAtt": [job_role, "Arn"]}
    assert by_action["iam:PassRole"]["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_the_job_role_reads_the_endpoints_data_capture(main_template_json):
    role = next(k for k, v in main_template_json["Resources"].items()
                if v["Type"] == "AWS::IAM::Role" and k.startswith("DriftMonitoringJobRole"))
    statements = _statements(main_template_json, role)
    gets = [s for s in statements if "s3:GetObject" in _actions(s) and "/data-capture/*" in json.dumps(s["Resource"])]
    assert len(gets) == 1 and _actions(gets[0]) == ["s3:GetObject"]
    listing = [s for s in statements if "s3:ListBucket" in _actions(s) and "data-capture" in json.dumps(s.get("Condition"))]
    assert [s["Condition"] for s in listing] == [{"StringLike": {"s3:prefix": ["data-capture/*"]}}]

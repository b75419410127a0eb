"""Monitoring as synthesized: alarm e-mails can be delivered, and the dashboard and alarms watch the
metrics the Lambdas really emit (run with the environment the template gives them)."""

import base64
import json
import re
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.infra.deployment_harness import Resolver, lambda_environment

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))


def of_type(template: dict, kind: str) -> dict:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def emitted_metrics(text: str) -> set[tuple[str, str, tuple[str, ...]]]:
    """(namespace, metric, sorted dimension names) of every embedded-format line printed."""
    found = set()
    for line in text.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    found.add((directive["Namespace"], metric["Name"], tuple(sorted(dimensions))))
    return found


# ------------------------------------------------------------------------------ alarm delivery

def test_cloudwatch_may_use_the_alarm_topic_and_its_key_for_our_alarms_only(main_template_json):
    template = main_template_json
    [topic] = of_type(template, "AWS::SNS::Topic").values()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = template["Resources"][key_id]["Properties"]
    buckets = of_type(template, "AWS::S3::Bucket").values()
    assert all(key_id not in json.dumps(b["Properties"].get("BucketEncryption")) for b in buckets)  # not the data key
    [grant] = [s for s in key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert sorted(grant["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"] and grant["Effect"] == "Allow"
    [policy] = of_type(template, "AWS::SNS::TopicPolicy").values()
    [publish] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
                 if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert publish["Action"] == "sns:Publish" and publish["Effect"] == "Allow"
    resolve = Resolver(template)
    for statement in (grant, publish):
        assert resolve(statement["Condition"]["StringEquals"]["aws:SourceAccount"]) == "123456789012"
        pattern = resolve(statement["Condition"]["ArnLike"]["aws:SourceArn"])
        assert pattern == "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:ivadas-dev-*"
    # every alarm that notifies the topic falls under the conditions
    for alarm in of_type(template, "AWS::CloudWatch::Alarm").values():
        name = alarm["Properties"]["AlarmName"]
        assert re.fullmatch(pattern.replace("*", ".*"), f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}"), name
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": next(iter(of_type(template, "AWS::SNS::Topic")))}]


# ------------------------------------------------------------------------------ the dashboard

def dashboard_searches(template: dict) -> list[tuple[str, tuple[str, ...], str]]:
    """(namespace, dimension names, metric) of every SEARCH expression on the dashboard."""
    [dashboard] = of_type(template, "AWS::CloudWatch::Dashboard").values()
    body = Resolver(template)(dashboard["Properties"]["DashboardBody"])
    searches = re.findall(r"SEARCH\('\{([^}]*)\} MetricName=\"(\w+)\"", json.dumps(json.loads(body)).replace('\\"', '"'))
    return [(schema.split(",")[0], tuple(sorted(schema.split(",")[1:])), metric) for schema, metric in searches]


@pytest.fixture
def predict_lambda(main_template_json, monkeypatch):
    """The predict Lambda with the template's metric settings, its AWS calls served by moto."""
    deployed = lambda_environment(main_template_json, "predict_app.handler")
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "INSPECTION_LOG": "dynamodb", "INSPECTION_TABLE": "inspections", "INSPECTION_BUCKET": "artifacts",
           "STORE_ANOMALOUS_IMAGES": "true", "ENDPOINT_NAMES": deployed["ENDPOINT_NAMES"],
           "MODEL_MODALITIES": deployed["MODEL_MODALITIES"], "DEFAULT_MODELS": deployed["DEFAULT_MODELS"],
           "POWERTOOLS_SERVICE_NAME": deployed["POWERTOOLS_SERVICE_NAME"],
           "POWERTOOLS_METRICS_NAMESPACE": deployed["POWERTOOLS_METRICS_NAMESPACE"]}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ORIGIN_VERIFY_SECRET_ARN", raising=False)
    import endpoint_client
    import predict_app
    import routes_predict

    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="artifacts")
        boto3.client("dynamodb").create_table(
            TableName="inspections", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "day", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "day", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
        monkeypatch.setattr(endpoint_client, "_runtime", None)
        monkeypatch.setattr(endpoint_client, "_runtimes", {})
        monkeypatch.setattr(routes_predict, "_log", None)
        yield predict_app


def predict(predict_app, anomalous: bool) -> int:
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    result = {"class_name": "tiles", "model": {"kind": "patchcore", "version": "ivadas-dev-training-patchcore/1"},
              "anomaly_score": 0.9 if anomalous else 0.1, "raw_score": 7.5, "threshold": 0.5, "raw_threshold": 5.0,
              "is_anomaly": anomalous, "timing_ms": {"model": 50.0}}
    sagemakerruntime_backends["123456789012"]["us-east-1"].results_queue.append(
        (json.dumps(result), "application/json", "AllTraffic", ""))
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()
    event = {"resource": "/{proxy+}", "path": "/predict", "httpMethod": "POST", "headers": {"Content-Type": "application/json"},
             "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
             "pathParameters": {"proxy": "predict"}, "stageVariables": None, "isBase64Encoded": False,
             "body": json.dumps({"class_name": "tiles", "image_base64": image}),
             "requestContext": {"requestId": str(uuid.uuid4()), "stage": "prod", "path": "/predict", "httpMethod": "POST",
                                "resourcePath": "/{proxy+}", "identity": {"sourceIp": "10.0.0.1"}}}

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "ivadas-predict", 1024, "request"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ivadas-predict"

        @staticmethod
        def get_remaining_time_in_millis():
            return 29_000

    return predict_app.handler(event, Context())["statusCode"]


def test_the_dashboard_searches_for_the_dimensions_the_predict_lambda_emits(main_template_json, predict_lambda, capsys):
    """Powertools adds a `service` dimension to every metric: a SEARCH schema without it matches nothing."""
    assert predict(predict_lambda, True) == 200 and predict(predict_lambda, False) == 200
    emitted = emitted_metrics(capsys.readouterr().out)
    # the predict Lambda's searches; the drift row's are the monitoring job's (tests/infra/test_tracking_and_drift.py)
    searches = [s for s in dashboard_searches(main_template_json) if s[0] != "IVADAS/Monitoring"]
    assert {metric for _, _, metric in searches} == {"Anomalies", "Inspections"}
    for namespace, dimensions, metric in searches:
        assert (namespace, metric, dimensions) in emitted, (namespace, metric, dimensions, sorted(emitted))


def test_the_deployment_alarms_watch_what_the_deploy_lambda_emits(main_template_json, monkeypatch, capsys):
    from tests.infra.deployment_harness import World
    from tests.infra.test_deploy_lambda import walk

    world = World(main_template_json, monkeypatch)
    import approvals
    import pipelines.registry as registry_module

    clock = lambda: world.fake.now().isoformat(timespec="milliseconds")  # noqa: E731
    monkeypatch.setattr(registry_module, "now", clock)
    monkeypatch.setattr(approvals, "now", clock)
    for _ in walk(world):
        pass
    emitted = emitted_metrics(capsys.readouterr().out)
    deployment_alarm = re.compile(r"ivadas-dev-(deployment-.*|served-version-mismatch)")
    alarms = {a["Properties"]["MetricName"]: a["Properties"] for a in of_type(main_template_json, "AWS::CloudWatch::Alarm").values()
              if a["Properties"].get("Namespace") == "IVADAS" and deployment_alarm.fullmatch(a["Properties"]["AlarmName"])}
    assert {"DeploymentRolledBack", "ServedVersionMismatch"} <= set(alarms)
    watched = {name: (a["Namespace"], name, tuple(sorted(d["Name"] for d in a["Dimensions"]))) for name, a in alarms.items()}
    for name in ("DeploymentRolledBack", "ServedVersionMismatch"):  # the walk rolls back once and compares often
        assert watched[name] in emitted, (watched[name], sorted(emitted))
    assert all(a["Dimensions"] == [{"Name": "service", "Value": "ivadas-deploy"}] for a in alarms.values())

"""The sensor feed on AWS as synthesized: the schedule and its role, the feed Lambda and what its role
allows, the predict Lambda's read-only view of the same files, the API routes behind CloudFront and
the WAF, the alarms; then the feed's and the API's real AWS calls replayed against their roles, and a
run's counts checked against the alarms that watch them."""

import io
import json
import re
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto import mock_aws

from inference.kinds import MODEL_KINDS, kinds_of
from infra.aws.config import IvadasConfig
from infra.aws.constructs.sensor_feed import FEED_SERVICE, FILE_METRICS
from tests.infra.deployment_harness import Resolver, function_resource, lambda_environment
from tests.infra.iam_replay import (CallRecorder, authorizations, permitted, policy_statements, request,
                                    role_statements)
from tests.infra.strict_aws import ACCOUNT, REGION
from tests.infra.test_monitoring import emitted_metrics

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))
CONFIG = IvadasConfig(account=ACCOUNT, alarm_email="qa@example.com")
FEED, PREDICT = "sensor_feed.handler", "predict_app.handler"


def of_type(template: dict, kind: str) -> dict:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def feed_schedules(template: dict) -> dict:
    """The sensor feed's schedules (drift monitoring has one of its own, which starts a Processing job)."""
    return {k: r for k, r in of_type(template, "AWS::Scheduler::Schedule").items()
            if "createProcessingJob" not in json.dumps(r["Properties"]["Target"]["Arn"])}


def data_bucket(template: dict) -> tuple[str, str]:
    """(bucket name, ARN of its default KMS key) of the data bucket (the `DataBucket` output)."""
    resolve = Resolver(template)
    logical = template["Outputs"]["DataBucket"]["Value"]["Ref"]
    [rule] = template["Resources"][logical]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    return resolve({"Ref": logical}), resolve(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"])


def inspection_table(template: dict) -> tuple[str, str]:
    """(table name, ARN of the key that encrypts it)."""
    resolve = Resolver(template)
    [(logical, table)] = of_type(template, "AWS::DynamoDB::GlobalTable").items()
    [replica] = table["Properties"]["Replicas"]
    return resolve({"Ref": logical}), resolve(replica["SSESpecification"]["KMSMasterKeyId"])


def alarms_by_name(template: dict) -> dict:
    return {a["Properties"]["AlarmName"]: a["Properties"] for a in of_type(template, "AWS::CloudWatch::Alarm").values()}


# ------------------------------------------------------------------------------ the feed Lambda

def test_the_feed_runs_one_at_a_time_from_the_predict_asset_with_the_same_models(main_template_json):
    template = main_template_json
    feed_id, feed = function_resource(template, FEED)
    _, predict = function_resource(template, PREDICT)
    props = feed["Properties"]
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["Timeout"] == CONFIG.sensor_feed_timeout_seconds == 300
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Code"] == predict["Properties"]["Code"]
    # the predict function's layers (it also has PyYAML, for the class lists of dataset zips)
    assert props["Layers"] and all(layer in predict["Properties"]["Layers"] for layer in props["Layers"])
    feed_env, predict_env = lambda_environment(template, FEED), lambda_environment(template, PREDICT)
    for key in ("ENDPOINT_NAMES", "MODEL_MODALITIES", "DEFAULT_MODELS"):
        assert feed_env[key] == predict_env[key], key
    assert json.loads(feed_env["DEFAULT_MODELS"]) == {"image": "patchcore", "sensors": "pca"}
    assert json.loads(feed_env["ENDPOINT_NAMES"]) == {kind: CONFIG.endpoint_name(kind) for kind in MODEL_KINDS}
    bucket, key = data_bucket(template)
    table, _ = inspection_table(template)
    assert feed_env["SENSOR_STORE"] == predict_env["SENSOR_STORE"] == f"s3://{bucket}"
    assert feed_env["SENSOR_STORE_KMS_KEY"] == key  # written as the bucket's own default would write it
    assert (feed_env["INSPECTION_LOG"], feed_env["INSPECTION_TABLE"]) == ("dynamodb", table) == (
        predict_env["INSPECTION_LOG"], predict_env["INSPECTION_TABLE"])
    assert (feed_env["POWERTOOLS_SERVICE_NAME"], feed_env["POWERTOOLS_METRICS_NAMESPACE"]) == (FEED_SERVICE, "IVADAS")
    assert int(feed_env["ENDPOINT_TIMEOUT_S"]) * 1000 < props["Timeout"] * 1000 - 30_000  # one call fits a run's end
    [invoke_config] = [c["Properties"] for c in of_type(template, "AWS::Lambda::EventInvokeConfig").values()
                       if c["Properties"]["FunctionName"] == {"Ref": feed_id}]
    # a failed run waits for the next one; an invocation queued behind a long run is superseded by the next
    assert invoke_config["MaximumRetryAttempts"] == 0
    assert invoke_config["MaximumEventAgeInSeconds"] == 60 * CONFIG.sensor_feed_rate_minutes


# ------------------------------------------------------------------------------ the schedule

def test_the_schedule_runs_the_feed_through_a_role_of_its_own_with_retries_and_a_dead_letter_queue(main_template_json):
    template = main_template_json
    feed_id, _ = function_resource(template, FEED)
    predict_id, _ = function_resource(template, PREDICT)
    [(schedule_id, schedule)] = feed_schedules(template).items()
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "rate(5 minutes)" and props["State"] == "ENABLED"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = props["Target"]
    assert target["Arn"] == {"Fn::GetAtt": [feed_id, "Arn"]} and json.loads(target["Input"]) == {}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 300, "MaximumRetryAttempts": 3}

    queue_id, attribute = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"]
    queue = template["Resources"][queue_id]
    assert attribute == "Arn" and queue["Type"] == "AWS::SQS::Queue" and "FifoQueue" not in queue["Properties"]
    assert queue["Properties"]["SqsManagedSseEnabled"] is True and queue["Properties"]["MessageRetentionPeriod"] == 14 * 86400
    [queue_policy] = [p["Properties"] for p in of_type(template, "AWS::SQS::QueuePolicy").values()
                      if {"Ref": queue_id} in p["Properties"]["Queues"]]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in queue_policy["PolicyDocument"]["Statement"])

    [(group_id, group)] = of_type(template, "AWS::Scheduler::ScheduleGroup").items()
    assert props["GroupName"] == group["Properties"]["Name"] == CONFIG.prefix and group_id in schedule["DependsOn"]
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    resolve = Resolver(template)
    assert {k: resolve(v) for k, v in trust["Condition"]["StringEquals"].items()} == {
        "aws:SourceAccount": ACCOUNT, "aws:SourceArn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/{CONFIG.prefix}"}
    assert "ManagedPolicyArns" not in role
    statements = policy_statements(template, role_id)
    feed_arn, queue_arn = resolve({"Fn::GetAtt": [feed_id, "Arn"]}), resolve({"Fn::GetAtt": [queue_id, "Arn"]})
    assert sorted((s["Action"], s["Resource"]) for s in statements) == [
        (["lambda:InvokeFunction"], [feed_arn]), (["sqs:SendMessage"], [queue_arn])]
    assert not permitted(statements, request("lambda:InvokeFunction", f"{feed_arn}:1"))  # no version, no alias
    assert not permitted(statements, request("lambda:InvokeFunction", resolve({"Fn::GetAtt": [predict_id, "Arn"]})))


# ------------------------------------------------------------------------------ least privilege

def test_the_feed_role_reaches_the_sensors_prefix_the_sensor_endpoints_and_one_table_action(main_template_json):
    template = main_template_json
    statements = role_statements(template, FEED)
    bucket, key = data_bucket(template)
    table, table_key = inspection_table(template)
    assert table_key != key  # the inspection log has a key of its own (infra/aws/constructs/storage.py)
    bucket_arn, table_arn = f"arn:aws:s3:::{bucket}", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    endpoint = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/"
    via_s3, via_dynamodb = f"s3.{REGION}.amazonaws.com", f"dynamodb.{REGION}.amazonaws.com"
    allowed = [
        request("s3:ListBucket", bucket_arn, s3__prefix="sensors/"),
        request("s3:ListBucket", bucket_arn, s3__prefix="sensors/pump-1/incoming/"),
        *[request(action, f"{bucket_arn}/sensors/pump-1/incoming/a.csv")
          for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")],
        request("kms:Decrypt", key, kms__ViaService=via_s3), request("kms:GenerateDataKey", key, kms__ViaService=via_s3),
        request("kms:Decrypt", table_key, kms__ViaService=via_dynamodb),
        request("dynamodb:PutItem", table_arn),
        *[request("sagemaker:InvokeEndpoint", endpoint + CONFIG.endpoint_name(kind)) for kind in kinds_of("sensors")],
    ]
    refused = [
        request("s3:ListBucket", bucket_arn),  # a listing of the whole bucket
        request("s3:ListBucket", bucket_arn, s3__prefix="datasets/"),
        request("s3:GetObject", f"{bucket_arn}/datasets/tiles/train/good/0.png"),
        request("s3:PutObject", f"{bucket_arn}/pipelines/model.tar.gz"),
        request("s3:DeleteObject", f"{bucket_arn}/sensor-archive/a.csv"),
        request("s3:GetObject", "arn:aws:s3:::another-bucket/sensors/pump-1/incoming/a.csv"),
        request("kms:Decrypt", key), request("kms:Decrypt", key, kms__ViaService=f"sqs.{REGION}.amazonaws.com"),
        request("kms:GenerateDataKey", key, kms__ViaService=via_dynamodb), request("kms:Decrypt", key, kms__ViaService=via_dynamodb),
        request("kms:Decrypt", table_key), request("kms:Decrypt", table_key, kms__ViaService=via_s3),
        request("kms:GenerateDataKey", table_key, kms__ViaService=via_s3),
        *[request(action, table_arn) for action in ("dynamodb:Query", "dynamodb:Scan", "dynamodb:GetItem", "dynamodb:DeleteItem")],
        *[request("sagemaker:InvokeEndpoint", endpoint + CONFIG.endpoint_name(kind)) for kind in kinds_of("image")],
    ]
    assert [str(r) for r in allowed if not permitted(statements, r)] == []
    assert [str(r) for r in refused if permitted(statements, r)] == []
    # wildcards: the object prefix, and X-Ray, which has no resource-level permissions
    assert all("*" not in action for s in statements for action in s["Action"])
    for statement in statements:
        for resource in statement["Resource"]:
            if "*" in resource:
                assert resource == f"{bucket_arn}/sensors/*" or (
                    resource == "*" and all(a.startswith("xray:") for a in statement["Action"])), statement


def test_the_predict_role_reads_the_sensors_prefix_and_writes_nothing_there(main_template_json):
    template = main_template_json
    statements = role_statements(template, PREDICT)
    bucket, key = data_bucket(template)
    bucket_arn = f"arn:aws:s3:::{bucket}"
    for allowed in (request("s3:ListBucket", bucket_arn, s3__prefix="sensors/"),
                    request("s3:GetObject", f"{bucket_arn}/sensors/pump-1/results/x.json"),
                    request("kms:Decrypt", key, kms__ViaService=f"s3.{REGION}.amazonaws.com")):
        assert permitted(statements, allowed), str(allowed)
    # (what it may do under datasets/ for uploads and trainings is tested with the life-cycle routes)
    for refused in (request("s3:PutObject", f"{bucket_arn}/sensors/pump-1/incoming/a.csv"),
                    request("s3:DeleteObject", f"{bucket_arn}/sensors/pump-1/incoming/a.csv"),
                    request("s3:PutObject", f"{bucket_arn}/sensors/pump-1/results/x.json"),
                    request("s3:ListBucket", bucket_arn)):
        assert not permitted(statements, refused), str(refused)


# ------------------------------------------------------------------------------ routes, CloudFront, WAF

def api_gateway_routes(template: dict) -> dict[str, set[str]]:
    """Path (with `{param}` parts) → HTTP methods, as API Gateway will serve them."""
    resources = of_type(template, "AWS::ApiGateway::Resource")
    # the API behind CloudFront (the station API serves POST /predict only, to stations)
    [api_id] = [k for k, v in of_type(template, "AWS::ApiGateway::RestApi").items() if v["Properties"]["Name"].endswith("-api")]

    def path(resource_id):
        if resource_id == {"Fn::GetAtt": [api_id, "RootResourceId"]}:
            return ""
        props = resources[resource_id["Ref"]]["Properties"]
        return f"{path(props['ParentId'])}/{props['PathPart']}"

    routes: dict[str, set[str]] = {}
    for method in of_type(template, "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        if props["HttpMethod"] != "OPTIONS" and props["RestApiId"] == {"Ref": api_id}:
            routes.setdefault(path(props["ResourceId"]) or "/", set()).add(props["HttpMethod"])
    return routes


def cloudfront_sends_to_api(template: dict, path: str) -> bool:
    """Whether the distribution's first matching behaviour (in order; `*` any characters) goes to the API."""
    [distribution] = of_type(template, "AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    api_origin = next(o["Id"] for o in config["Origins"] if "CustomOriginConfig" in o)
    for behaviour in config["CacheBehaviors"]:
        if re.fullmatch(re.escape(behaviour["PathPattern"]).replace(r"\*", ".*").replace(r"\?", "."), path):
            return behaviour["TargetOriginId"] == api_origin
    return False


def ui_api_paths() -> set[str]:
    """Every path the UI asks the API for (`api("/...")` in ui/js), a template's `${...}` as one segment."""
    found = set()
    for script in (ROOT / "ui" / "js").glob("*.js"):
        for literal in re.findall(r"""api\(\s*[`"']([^`"']+)""", script.read_text()):
            found.add(re.sub(r"\$\{[^}]+\}", "x", literal).split("?")[0])
    return found


def test_every_route_of_the_predict_app_is_in_api_gateway_and_cloudfront_sends_it_there(main_template_json):
    import predict_app

    routes = api_gateway_routes(main_template_json)
    served = {(r.method, re.sub(r"<(\w+)>", r"{\1}", r.path)) for r in predict_app.app._static_routes + predict_app.app._dynamic_routes}
    assert {("GET", "/assets"), ("GET", "/assets/{asset}/series"), ("GET", "/assets/{asset}/events")} <= served
    assert [(m, p) for m, p in sorted(served) if m not in routes.get(p, set())] == []
    for _, path in served:
        concrete = path.replace("{asset}", "pump-1")
        assert cloudfront_sends_to_api(main_template_json, concrete), concrete
    ui = ui_api_paths()
    assert {"/assets", "/assets/x/series", "/assets/x/events"} <= ui
    patterns = [re.sub(r"\{\w+\}", "[^/]+", p) for p in routes]
    for path in ui:
        assert any(re.fullmatch(p, path) for p in patterns), f"the UI asks for {path}, which API Gateway does not serve"
        assert cloudfront_sends_to_api(main_template_json, path), path


def blocked_by_our_rules(acl: dict, method: str, path: str, body_bytes: int) -> list[str]:
    """The web ACL's own blocking rules (not AWS's managed groups, nor the per-IP rate) that match a request."""
    def holds(statement: dict) -> bool:
        (kind, spec), = statement.items()
        if kind == "AndStatement":
            return all(holds(s) for s in spec["Statements"])
        if kind == "NotStatement":
            return not holds(spec["Statement"])
        if kind == "SizeConstraintStatement" and "Body" in spec["FieldToMatch"] and spec["ComparisonOperator"] == "GT":
            return body_bytes > spec["Size"]
        if kind == "ByteMatchStatement" and "UriPath" in spec["FieldToMatch"] and spec["PositionalConstraint"] == "STARTS_WITH":
            return path.startswith(spec["SearchString"])
        raise AssertionError(f"no model of {kind} {spec}")

    return [rule["Name"] for rule in acl["Rules"] if "Block" in rule.get("Action", {})
            and "RateBasedStatement" not in rule["Statement"] and holds(rule["Statement"])]


def test_the_web_acl_lets_the_sensor_routes_through(edge_template):
    [acl] = edge_template.find_resources("AWS::WAFv2::WebACL").values()
    acl = acl["Properties"]
    for path in ("/assets", "/assets/pump-1/series", "/assets/pump-1/events"):
        assert blocked_by_our_rules(acl, "GET", path, 0) == [], path
    assert blocked_by_our_rules(acl, "POST", "/predict", 5_000_000) == []  # images and windows keep their own limits
    assert blocked_by_our_rules(acl, "POST", "/assets", 9000) == ["BodySizeOutsidePredict"]  # the model bites


# ------------------------------------------------------------------------------ alarms

def test_alarms_watch_the_feeds_errors_failed_files_dead_letters_and_silence(main_template_json):
    template = main_template_json
    alarms = alarms_by_name(template)
    feed_id, _ = function_resource(template, FEED)
    [schedule] = feed_schedules(template).values()
    queue_id = schedule["Properties"]["Target"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]

    errors = alarms["ivadas-dev-sensor-feed-errors"]
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == ("AWS/Lambda", "Errors", "Sum")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": feed_id}}] and errors["Threshold"] == 1
    failed = alarms["ivadas-dev-sensor-files-failed"]
    assert (failed["Namespace"], failed["MetricName"], failed["Threshold"]) == ("IVADAS", "FilesFailed", 1)
    assert failed["Dimensions"] == [{"Name": "service", "Value": FEED_SERVICE}]
    dead = alarms["ivadas-dev-sensor-feed-dead-letters"]
    assert dead["MetricName"] == "ApproximateNumberOfMessagesVisible" and dead["Threshold"] == 1
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    stopped = alarms["ivadas-dev-sensor-feed-stopped"]
    assert (stopped["MetricName"], stopped["ComparisonOperator"], stopped["TreatMissingData"]) == (
        "Invocations", "LessThanThreshold", "breaching")
    assert stopped["Period"] == 60 * CONFIG.sensor_feed_rate_minutes and stopped["EvaluationPeriods"] == 3
    for alarm in (errors, failed, dead, stopped):
        assert alarm["AlarmActions"], alarm["AlarmName"]

    [dashboard] = of_type(template, "AWS::CloudWatch::Dashboard").values()
    body = json.loads(Resolver(template)(dashboard["Properties"]["DashboardBody"]))
    graphs = [json.dumps(w) for w in body["widgets"]]
    for name in FILE_METRICS:
        assert any(f'["IVADAS", "{name}", "service", "{FEED_SERVICE}"' in g for g in graphs), name
    assert any("AWS/Scheduler" in g and CONFIG.prefix in g for g in graphs)


def feed_only_template(config: IvadasConfig) -> dict:
    """Storage, serving, API, feed and monitoring alone (no pipeline, no web), synthesized with `config`."""
    from types import SimpleNamespace

    import aws_cdk
    from aws_cdk import App, Stack
    from aws_cdk import aws_ecr as ecr

    from infra.aws.constructs.api import Api
    from infra.aws.constructs.monitoring import Monitoring
    from infra.aws.constructs.sensor_feed import SensorFeed
    from infra.aws.constructs.serving import Serving
    from infra.aws.constructs.sign_in import SignIn
    from infra.aws.constructs.storage import Storage

    stack = Stack(App(), "FeedOnly", env=aws_cdk.Environment(account=ACCOUNT, region=REGION))
    storage = Storage(stack, "Storage")
    images = SimpleNamespace(endpoint=SimpleNamespace(repository=ecr.Repository(stack, "EndpointImages")))
    serving = Serving(stack, "Serving", config=config, storage=storage, images=images, powertools_version=18)
    sign_in = SignIn(stack, "SignIn", config=config)
    api = Api(stack, "Api", config=config, storage=storage, serving=serving, sign_in=sign_in, powertools_version=18)
    feed = SensorFeed(stack, "SensorFeed", config=config, storage=storage, serving=serving, api=api, powertools_version=18)
    Monitoring(stack, "Monitoring", config=config, storage=storage, serving=serving, api=api, sensor_feed=feed)
    return aws_cdk.assertions.Template.from_stack(stack).to_json()


def test_the_rate_the_switch_and_the_sensor_default_come_from_the_settings():
    template = feed_only_template(IvadasConfig(account=ACCOUNT, sensor_feed_rate_minutes=15, sensor_feed_enabled=False,
                                               default_sensor_model="isolation_forest"))
    [schedule] = feed_schedules(template).values()
    props = schedule["Properties"]
    assert (props["ScheduleExpression"], props["State"]) == ("rate(15 minutes)", "DISABLED")
    assert props["Target"]["RetryPolicy"]["MaximumEventAgeInSeconds"] == 900
    [invoke_config] = of_type(template, "AWS::Lambda::EventInvokeConfig").values()
    assert invoke_config["Properties"]["MaximumEventAgeInSeconds"] == 900
    names = set(alarms_by_name(template))
    assert "ivadas-dev-sensor-feed-errors" in names and "ivadas-dev-sensor-feed-stopped" not in names  # off is not silence
    env = lambda_environment(template, FEED)
    assert json.loads(env["DEFAULT_MODELS"]) == {"image": "patchcore", "sensors": "isolation_forest"}
    assert env["DEFAULT_MODELS"] == lambda_environment(template, PREDICT)["DEFAULT_MODELS"]


# ------------------------------------------------------------------------------ the feed's calls, replayed

class Context:
    function_name, memory_limit_in_mb, aws_request_id = "ivadas-sensor-feed", 1024, "request"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ivadas-sensor-feed"

    def __init__(self, remaining_ms: int = 300_000):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self):
        return self.remaining_ms


def csv_file(columns, timestamps, rows) -> bytes:
    return ("\n".join([",".join(["timestamp", *columns])] + [",".join([t, *map(repr, r)]) for t, r in zip(timestamps, rows)])
            + "\n").encode()


@pytest.fixture
def feed_world(main_template_json, monkeypatch):
    """The template's environment for the feed, S3 and DynamoDB in moto, every boto3 call recorded."""
    env = lambda_environment(main_template_json, FEED)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
                       **env}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", raising=False)
    import endpoint_client
    import sensor_feed

    monkeypatch.setattr(endpoint_client, "_runtime", None)
    monkeypatch.setattr(endpoint_client, "_runtimes", {})
    monkeypatch.setattr(sensor_feed, "_min_rows", {})
    recorder = CallRecorder()
    with mock_aws():
        recorder.install(monkeypatch)
        bucket, _ = data_bucket(main_template_json)
        table, _ = inspection_table(main_template_json)
        boto3.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        boto3.client("dynamodb").create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "day", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "day", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
        recorder.calls.clear()  # the test's own set-up is not the Lambda's
        yield env, recorder, bucket, table


def serve_sensor_model(model, endpoint: str):
    """InvokeEndpoint answered by an in-process model, as SageMaker answers (ModelError 424 for the model's 4xx)."""
    from inference.errors import IvadasError

    def answer(params):
        if params["EndpointName"] != endpoint:
            return 400, {"Error": {"Code": "ValidationError", "Message": f"Endpoint {params['EndpointName']} of account "
                                                                         f"{ACCOUNT} not found."}}
        payload = json.loads(params["Body"])
        try:
            body = {**model.describe(), "metrics": {}} if payload.get("describe") else model.predict(payload)
        except IvadasError as exc:
            return 424, {"Error": {"Code": "ModelError", "Message": f"Received client error ({exc.status}) from primary"},
                         "OriginalStatusCode": exc.status, "OriginalMessage": json.dumps(exc.to_dict())}
        data = json.dumps(body).encode()
        return 200, {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentType": "application/json"}

    return answer


def keys(bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_every_call_of_a_feed_run_and_of_the_sensor_routes_is_allowed_by_the_roles_as_synthesized(
        main_template_json, feed_world, sensor_data, sensor_bundle, monkeypatch):
    from inference.model import load_model
    from pipelines.sensors.datasets import read_asset

    env, recorder, bucket, table = feed_world
    endpoint = json.loads(env["ENDPOINT_NAMES"])[json.loads(env["DEFAULT_MODELS"])["sensors"]]
    recorder.answers["sagemaker-runtime.InvokeEndpoint"] = serve_sensor_model(load_model(sensor_bundle[0]), endpoint)
    s3 = boto3.client("s3")
    for asset, spans in (("pump-1", [(600, 700), (700, 830)]), ("pump-2", [(400, 480)])):
        data = read_asset(sensor_data, asset)
        values, stamps = data.segments[0].values.tolist(), data.segments[0].timestamps
        for start, end in spans:
            s3.put_object(Bucket=bucket, Key=f"sensors/{asset}/incoming/{start:05d}.csv",
                          Body=csv_file(data.columns, stamps[start:end], values[start:end]))
    s3.put_object(Bucket=bucket, Key="sensors/pump-1/incoming/99999-bad.csv",
                  Body=b"timestamp,motor_current\n2026-03-04T00:00:00Z,broken\n")
    s3.put_object(Bucket=bucket, Key="datasets/pump-9.csv", Body=b"timestamp,x\n")  # not the feed's
    recorder.calls.clear()

    import sensor_feed

    summary = sensor_feed.handler({}, Context())
    feed_calls = list(recorder.calls)  # the Lambda's calls, not the checks below
    assert summary == {"model": "pca", "assets": {"pump-1": {"scored": 2, "failed": 1, "waiting": 0},
                                                  "pump-2": {"scored": 1, "failed": 0, "waiting": 0}}}
    assert keys(bucket, "sensors/pump-1/processed/") == ["sensors/pump-1/processed/00600.csv", "sensors/pump-1/processed/00700.csv"]
    assert keys(bucket, "sensors/pump-1/failed/") == ["sensors/pump-1/failed/99999-bad.csv",
                                                      "sensors/pump-1/failed/99999-bad.csv.error.json"]
    assert keys(bucket, "sensors/pump-1/incoming/") == [] and len(keys(bucket, "sensors/pump-1/results/")) == 2
    assert boto3.client("dynamodb").scan(TableName=table)["Count"] == 3  # one inspection per scored file

    # the sensors page reads what the run wrote, through the predict Lambda with its own environment (without
    # the origin check: its secret comes from Secrets Manager, which is not what this replay is about)
    predict_env = lambda_environment(main_template_json, PREDICT)
    for key, value in predict_env.items():
        if key != "ORIGIN_VERIFY_SECRET_ARN":
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("ORIGIN_VERIFY_SECRET_ARN", raising=False)
    import predict_app

    recorder.calls.clear()
    for path, expected in (("/assets", "assets"), ("/assets/pump-1/series", "scores"), ("/assets/pump-1/events", "events")):
        response = predict_app.handler(api_event("GET", path), Context(29_000))
        assert response["statusCode"] == 200 and expected in json.loads(response["body"]), (path, response["body"][:300])
    predict_calls = list(recorder.calls)

    keys_of_bucket, keys_of_table = {bucket: data_bucket(main_template_json)[1]}, {table: inspection_table(main_template_json)[1]}
    for handler, calls in ((FEED, feed_calls), (PREDICT, predict_calls)):
        statements = role_statements(main_template_json, handler)
        needed = {check for call in calls for check in authorizations(call, keys_of_bucket, keys_of_table)}
        denied = sorted(str(check) for check in needed if not permitted(statements, check))
        assert denied == [], (handler, denied)
        if handler == FEED:  # the replay went through every kind of call the role is for
            assert {c.action for c in needed} == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                                  "kms:Decrypt", "kms:GenerateDataKey", "dynamodb:PutItem",
                                                  "sagemaker:InvokeEndpoint"}
            assert any(c.operation == "HeadObject" and c.status == 404 for c in calls)  # a first state.json
            assert all(c.params.get("Prefix", "sensors/").startswith("sensors/") for c in calls)
        else:
            assert {c.action for c in needed} == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"}


def api_event(method: str, path: str) -> dict:
    return {"resource": "/{proxy+}", "path": path, "httpMethod": method, "headers": {}, "multiValueHeaders": {},
            "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": {"proxy": path[1:]},
            "stageVariables": None, "isBase64Encoded": False, "body": None,
            "requestContext": {"requestId": str(uuid.uuid4()), "stage": "prod", "path": path, "httpMethod": method,
                               "resourcePath": "/{proxy+}", "identity": {"sourceIp": "10.0.0.1"},
                               # what API Gateway's Cognito authorizer passes for a signed-in inspector
                               "authorizer": {"claims": {"cognito:username": "ana", "cognito:groups": "inspector"}}}}


# ------------------------------------------------------------------------------ a run's counts

def test_a_runs_counts_are_the_metrics_its_alarms_and_dashboard_watch(main_template_json, feed_world, capsys):
    """SageMaker's own errors (botocore Stubber, AWS's codes): a model refusing a file's sensors is a
    failed file, an endpoint that is gone leaves the rest waiting."""
    env, _, bucket, _ = feed_world
    endpoint = json.loads(env["ENDPOINT_NAMES"])["pca"]
    s3 = boto3.client("s3")
    rows = [[1.0 + i / 10, 2.0] for i in range(10)]
    stamps = [f"2026-03-04T00:{i:02d}:00Z" for i in range(10)]
    for name in ("1-ok", "2-unknown-sensor", "4-endpoint-gone", "5-later"):
        s3.put_object(Bucket=bucket, Key=f"sensors/pump-1/incoming/{name}.csv", Body=csv_file(["flow", "pressure"], stamps, rows))
    s3.put_object(Bucket=bucket, Key="sensors/pump-1/incoming/3-broken.csv", Body=b"timestamp,flow\n2026-03-04T00:00:00Z,n/a\n")

    import endpoint_client
    import sensor_feed

    runtime = boto3.client("sagemaker-runtime")
    stubber = Stubber(runtime)
    expected = {"EndpointName": endpoint, "ContentType": "application/json", "Accept": "application/json", "Body": ANY,
                "InferenceId": ANY}

    def body(content: dict) -> dict:
        data = json.dumps(content).encode()
        return {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentType": "application/json"}

    stubber.add_response("invoke_endpoint", body({"classes": {"pump-1": {"min_rows": 1}}}), expected)
    stubber.add_response("invoke_endpoint", body({
        "model": {"kind": "pca", "version": "ivadas-dev-training-pca/1"}, "threshold": 0.5, "anomaly_score": 0.2,
        "raw_score": 0.4, "scores": [0.2] * 10, "events": [], "contributions": []}), expected)
    stubber.add_client_error(
        "invoke_endpoint", service_error_code="ModelError", http_status_code=424,
        service_message="Received client error (400) from primary with message \"unknown sensor(s) ['humidity']\"",
        modeled_fields={"OriginalStatusCode": 400, "OriginalMessage": json.dumps(
            {"error": {"code": "bad_request", "message": "unknown sensor(s) ['humidity']"}}),
            "LogStreamArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{endpoint}"},
        expected_params=expected)
    stubber.add_client_error("invoke_endpoint", service_error_code="ValidationError", http_status_code=400,
                             service_message=f"Endpoint {endpoint} of account {ACCOUNT} not found.", expected_params=expected)
    capsys.readouterr()
    with stubber:
        endpoint_client._runtime = runtime  # the fixture's monkeypatch puts None back afterwards
        summary = sensor_feed.handler({}, Context())
    stubber.assert_no_pending_responses()
    assert summary["assets"]["pump-1"] == {"scored": 1, "failed": 2, "waiting": 2}
    assert keys(bucket, "sensors/pump-1/incoming/") == ["sensors/pump-1/incoming/4-endpoint-gone.csv",
                                                        "sensors/pump-1/incoming/5-later.csv"]
    reason = json.loads(s3.get_object(Bucket=bucket, Key="sensors/pump-1/failed/2-unknown-sensor.csv.error.json")["Body"].read())
    assert "humidity" in reason["reason"]

    out = capsys.readouterr().out
    emitted = emitted_metrics(out)
    [line] = [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"') and "FilesScored" in line]
    assert FEED_SERVICE in json.dumps(line)
    # the scored file counts in the anomaly-rate panels as an API verdict does: per asset and kind
    assert {("IVADAS", name, ("class_name", "model", "service")) for name in ("Inspections", "Anomalies")} <= emitted
    assert {name: line[name] for name in FILE_METRICS} == {"FilesScored": [1], "FilesFailed": [2], "FilesWaiting": [2]}
    failed = alarms_by_name(main_template_json)["ivadas-dev-sensor-files-failed"]
    watched = (failed["Namespace"], failed["MetricName"], tuple(sorted(d["Name"] for d in failed["Dimensions"])))
    assert watched in emitted, (watched, sorted(emitted))
    assert {("IVADAS", name, ("service",)) for name in FILE_METRICS} <= emitted

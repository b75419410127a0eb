"""The predict Lambda's narrowed role, replayed: an inspection (endpoint call, image kept under
inspections/, record put) and the history (a query) as a signed-in inspector, every AWS call checked
against the role as synthesized, conditions included. The role allows these and no more on the
table: no Scan, no DeleteItem, no UpdateItem; and the key only through DynamoDB or S3."""

import base64
import io
import json
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from moto import mock_aws

from tests.infra.deployment_harness import Resolver, lambda_environment
from tests.infra.iam_replay import CallRecorder, authorizations, permitted, request, role_statements
from tests.infra.strict_aws import ACCOUNT, REGION
from tests.infra.test_sensor_feed import inspection_table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))
PREDICT = "predict_app.handler"
IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()


class Context:
    function_name, memory_limit_in_mb, aws_request_id = "ivadas-predict", 1024, "request"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ivadas-predict"

    @staticmethod
    def get_remaining_time_in_millis():
        return 29_000


def artifacts_bucket(template: dict) -> tuple[str, str]:
    """(name, key ARN) of the bucket that keeps inspection images."""
    resolve = Resolver(template)
    for logical, resource in template["Resources"].items():
        rules = resource["Properties"].get("LifecycleConfiguration", {}).get("Rules", []) if resource["Type"] == "AWS::S3::Bucket" else []
        if any(rule.get("Prefix") == "inspections/" for rule in rules):
            [sse] = resource["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            return resolve({"Ref": logical}), resolve(sse["ServerSideEncryptionByDefault"]["KMSMasterKeyID"])
    raise AssertionError("no bucket keeps inspections/")


def as_inspector(method: str, path: str, body=None) -> dict:
    return {"resource": "/{proxy+}", "path": path, "httpMethod": method, "headers": {"Content-Type": "application/json"},
            "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": {"proxy": path[1:]}, "stageVariables": None, "isBase64Encoded": False,
            "body": json.dumps(body) if body is not None else None,
            "requestContext": {"requestId": str(uuid.uuid4()), "stage": "prod", "path": path, "httpMethod": method,
                               "resourcePath": "/{proxy+}", "identity": {"sourceIp": "10.0.0.1"},
                               "authorizer": {"claims": {"cognito:username": "ana", "cognito:groups": "inspector"}}}}


def anomalous_result(params):
    result = {"class_name": "tiles", "model": {"kind": "patchcore", "version": "ivadas-dev-training-patchcore/3"},
              "anomaly_score": 0.93, "raw_score": 7.5, "threshold": 0.5, "raw_threshold": 5.0, "is_anomaly": True,
              "regions": [], "timing_ms": {"model": 40.0, "total": 45.0}}
    data = json.dumps(result).encode()
    return 200, {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentType": "application/json"}


@pytest.fixture
def world(main_template_json, monkeypatch):
    env = lambda_environment(main_template_json, PREDICT)
    env.pop("ORIGIN_VERIFY_SECRET_ARN")  # the origin check is not what this replay is about (tests/serving/test_origin_secret.py)
    monkeypatch.delenv("ORIGIN_VERIFY_SECRET_ARN", raising=False)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
                       **env}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", raising=False)
    import endpoint_client
    import routes_predict

    monkeypatch.setattr(endpoint_client, "_runtime", None)
    monkeypatch.setattr(endpoint_client, "_runtimes", {})
    monkeypatch.setattr(routes_predict, "_log", None)
    recorder = CallRecorder()
    with mock_aws():
        recorder.install(monkeypatch)
        bucket, bucket_key = artifacts_bucket(main_template_json)
        table, table_key = inspection_table(main_template_json)
        boto3.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        boto3.client("dynamodb").create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "day", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "day", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
        recorder.calls.clear()
        recorder.answers["sagemaker-runtime.InvokeEndpoint"] = anomalous_result
        yield recorder, {bucket: bucket_key}, {table: table_key}, table


def test_an_inspection_and_the_history_need_nothing_the_role_does_not_allow(main_template_json, world):
    import predict_app

    recorder, bucket_keys, table_keys, table = world
    response = predict_app.handler(as_inspector("POST", "/predict", {"class_name": "tiles", "image_base64": IMAGE}), Context())
    assert response["statusCode"] == 200, response["body"]
    response = predict_app.handler(as_inspector("GET", "/inspections"), Context())
    assert response["statusCode"] == 200 and len(json.loads(response["body"])["inspections"]) == 1
    operations = {(c.service, c.operation) for c in recorder.calls}
    assert {("sagemaker-runtime", "InvokeEndpoint"), ("s3", "PutObject"), ("dynamodb", "PutItem"), ("dynamodb", "Query")} <= operations
    statements = role_statements(main_template_json, PREDICT)
    needed = {check for call in recorder.calls for check in authorizations(call, bucket_keys, table_keys)}
    denied = sorted(str(check) for check in needed if not permitted(statements, check))
    assert denied == []
    table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    for refused in ("dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"):
        assert not permitted(statements, request(refused, table_arn)), refused
    key = next(iter(table_keys.values()))
    for refused in ("kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo"):
        assert not permitted(statements, request(refused, key)), refused  # the key only through DynamoDB or S3

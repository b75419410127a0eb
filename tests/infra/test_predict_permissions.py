"""The predict Lambda's narrowed role, replayed: an inspection (endpoint call, image kept under
inspections/, record put), the history (a query) as a signed-in inspector, and the kept image read
back as feedback reads it, every AWS call checked against the role as synthesized, conditions
included, and the image's write against the bucket's policy. The role allows these and no more on
the table: no Scan, no DeleteItem, no UpdateItem; and the keys only through DynamoDB or S3."""

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

from tests.infra.deployment_harness import Resolver, lambda_context, lambda_environment
from tests.infra.iam_replay import (CallRecorder, authorizations, bucket_policy_statements, denied_by, permitted, request,
                                    role_statements)
from tests.infra.strict_aws import ACCOUNT, REGION
from tests.infra.test_sensor_feed import inspection_table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))
PREDICT = "predict_app.handler"
IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()


PREDICT_CONTEXT = lambda_context("ivadas-predict")


def artifacts_bucket(template: dict, logical_id: bool = False):
    """(name, default key ARN) of the bucket that keeps inspection images (and its logical ID)."""
    resolve = Resolver(template)
    for logical, resource in template["Resources"].items():
        rules = resource["Properties"].get("LifecycleConfiguration", {}).get("Rules", []) if resource["Type"] == "AWS::S3::Bucket" else []
        if any(rule.get("Prefix") == "inspections/" for rule in rules):
            [sse] = resource["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            found = resolve({"Ref": logical}), resolve(sse["ServerSideEncryptionByDefault"]["KMSMasterKeyID"])
            return (*found, logical) if logical_id else found
    raise AssertionError("no bucket keeps inspections/")


def inspection_key(template: dict) -> str:
    """ARN of the key that encrypts inspection data (images and the inspection log)."""
    resolve = Resolver(template)
    [logical] = [k for k, v in template["Resources"].items()
                 if v["Type"] == "AWS::KMS::Key" and v["Properties"]["Description"].startswith("IVADAS inspection data")]
    return resolve({"Fn::GetAtt": [logical, "Arn"]})


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
    response = predict_app.handler(as_inspector("POST", "/predict", {"class_name": "tiles", "image_base64": IMAGE}), PREDICT_CONTEXT)
    assert response["statusCode"] == 200, response["body"]
    response = predict_app.handler(as_inspector("GET", "/inspections"), PREDICT_CONTEXT)
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


def test_the_kept_image_is_written_with_the_inspection_key_the_bucket_insists_on_and_read_back(main_template_json, world):
    import predict_app
    from routes_datasets import read_kept_image

    recorder, bucket_keys, table_keys, table = world
    bucket, project_key, bucket_id = artifacts_bucket(main_template_json, logical_id=True)
    key = inspection_key(main_template_json)
    assert key != project_key and set(table_keys.values()) == {key}  # the inspection log is under it too
    response = predict_app.handler(as_inspector("POST", "/predict", {"class_name": "tiles", "image_base64": IMAGE}), PREDICT_CONTEXT)
    assert response["statusCode"] == 200, response["body"]
    [put] = [c for c in recorder.calls if c.operation == "PutObject"]
    assert put.params["Key"].startswith("inspections/") and put.params["SSEKMSKeyId"] == key
    image_key = json.loads(response["body"]).get("image_key") or f"s3://{bucket}/{put.params['Key']}"
    assert read_kept_image(image_key)  # as feedback on the inspection reads it
    [get] = [c for c in recorder.calls if c.operation == "GetObject"]
    assert get.answer["SSEKMSKeyId"] == key
    statements = role_statements(main_template_json, PREDICT)
    needed = {check for call in recorder.calls for check in authorizations(call, bucket_keys, table_keys)}
    assert request("kms:Decrypt", key, kms__ViaService=f"s3.{REGION}.amazonaws.com") in needed
    assert sorted(str(check) for check in needed if not permitted(statements, check)) == []
    # the bucket's policy: an image under inspections/ only with the inspection key
    policy = bucket_policy_statements(main_template_json, bucket_id)
    [written] = [check for check in authorizations(put, bucket_keys, table_keys) if check.action == "s3:PutObject"]
    assert not denied_by(policy, written)
    image = written.resource
    for refused in (request("s3:PutObject", image), request("s3:PutObject", image, **{
            "s3:x-amz-server-side-encryption-aws-kms-key-id": project_key})):
        assert denied_by(policy, refused), str(refused)
    assert not denied_by(policy, request("s3:PutObject", f"arn:aws:s3:::{bucket}/pipelines/model.tar.gz"))

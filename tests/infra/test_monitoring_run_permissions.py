"""POST /monitoring/run on AWS, replayed against the API Lambda's synthesized role: the job definition
read from the parameter the stack writes (its value as synthesized, so botocore checks the very
request CloudFormation would deploy against CreateProcessingJob's model), the job created under the
monitoring prefix with the job's role passed, and nothing more: no other job names, no role it did
not pass before but the job's, no pass to another service."""

import json
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.infra.deployment_harness import Resolver, lambda_context, lambda_environment
from tests.infra.iam_replay import CallRecorder, authorizations, permitted, request, role_statements
from tests.infra.strict_aws import ACCOUNT, REGION

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))
PREDICT = "predict_app.handler"


PREDICT_CONTEXT = lambda_context("ivadas-predict")


def as_engineer(method: str, path: str) -> dict:
    return {"resource": "/{proxy+}", "path": path, "httpMethod": method, "headers": {"Content-Type": "application/json"},
            "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": {"proxy": path[1:]}, "stageVariables": None, "isBase64Encoded": False, "body": "{}",
            "requestContext": {"requestId": str(uuid.uuid4()), "stage": "prod", "path": path, "httpMethod": method,
                               "resourcePath": "/{proxy+}", "identity": {"sourceIp": "10.0.0.1"},
                               "authorizer": {"claims": {"cognito:username": "eva", "cognito:groups": "engineer"}}}}


def job_definition(template: dict) -> tuple[str, dict]:
    [(logical, parameter)] = [(k, v) for k, v in template["Resources"].items() if v["Type"] == "AWS::SSM::Parameter"
                              and v["Properties"]["Name"].endswith("/monitoring/processing-job")]
    return parameter["Properties"]["Name"], json.loads(Resolver(template)(parameter["Properties"]["Value"]))


@pytest.fixture
def replay(main_template_json, monkeypatch):
    env = lambda_environment(main_template_json, PREDICT)
    env.pop("ORIGIN_VERIFY_SECRET_ARN", None)  # the origin check is not what this replay is about
    monkeypatch.delenv("ORIGIN_VERIFY_SECRET_ARN", raising=False)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
                       **env}.items():
        monkeypatch.setenv(key, value)
    import routes_monitoring

    monkeypatch.setattr(routes_monitoring, "_definition", None)
    monkeypatch.setattr(routes_monitoring, "_sagemaker", None)
    name, definition = job_definition(main_template_json)
    recorder = CallRecorder()
    with mock_aws():
        recorder.install(monkeypatch)
        boto3.client("ssm").put_parameter(Name=name, Type="String", Value=json.dumps(definition))
        recorder.calls.clear()
        recorder.answers["sagemaker.CreateProcessingJob"] = lambda params: (
            200, {"ProcessingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{params['ProcessingJobName']}"})
        yield recorder, definition


def test_run_now_needs_nothing_the_role_does_not_allow(main_template_json, replay):
    import predict_app

    recorder, definition = replay
    response = predict_app.handler(as_engineer("POST", "/monitoring/run"), PREDICT_CONTEXT)
    assert response["statusCode"] == 202, response["body"]
    job_name = json.loads(response["body"])["job_name"]
    [create] = [c for c in recorder.calls if c.operation == "CreateProcessingJob"]
    assert create.params == {"ProcessingJobName": job_name, **definition["request"]}  # the schedule's request, its own name
    assert {(c.service, c.operation) for c in recorder.calls} == {("ssm", "GetParameter"), ("sagemaker", "CreateProcessingJob")}
    statements = role_statements(main_template_json, PREDICT)
    needed = {check for call in recorder.calls for check in authorizations(call, {}, {})}
    assert sorted(str(check) for check in needed if not permitted(statements, check)) == []


def test_a_start_whose_answer_was_lost_is_recognised_as_its_own_job(main_template_json, replay):
    """botocore resends a CreateProcessingJob whose answer was lost; SageMaker refuses the second as
    ResourceInUse. The Lambda then reads the job back to see it is its own: a 202, not a 409."""
    import predict_app

    recorder, definition = replay
    recorder.answers["sagemaker.CreateProcessingJob"] = lambda params: (
        400, {"Error": {"Code": "ResourceInUse", "Message": f"Job {params['ProcessingJobName']} already exists"}})
    recorder.answers["sagemaker.DescribeProcessingJob"] = lambda params: (
        200, {**definition["request"], "ProcessingJobName": params["ProcessingJobName"], "ProcessingJobStatus": "InProgress",
              "ProcessingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{params['ProcessingJobName']}",
              "CreationTime": 0})
    response = predict_app.handler(as_engineer("POST", "/monitoring/run"), PREDICT_CONTEXT)
    assert response["statusCode"] == 202, response["body"]
    assert [c.operation for c in recorder.calls if c.service == "sagemaker"] == ["CreateProcessingJob", "DescribeProcessingJob"]
    statements = role_statements(main_template_json, PREDICT)
    needed = {check for call in recorder.calls for check in authorizations(call, {}, {})}
    assert sorted(str(check) for check in needed if not permitted(statements, check)) == []


def test_the_role_starts_only_monitoring_jobs_and_passes_only_their_role(main_template_json, replay):
    _, definition = replay
    statements = role_statements(main_template_json, PREDICT)
    job_role, to_sagemaker = definition["request"]["RoleArn"], {"iam__PassedToService": "sagemaker.amazonaws.com"}
    jobs = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/"
    assert permitted(statements, request("sagemaker:CreateProcessingJob", jobs + definition["namePrefix"] + "now-1"))
    assert not permitted(statements, request("sagemaker:CreateProcessingJob", jobs + "ivadas-dev-other-job"))
    assert not permitted(statements, request("sagemaker:CreateTrainingJob", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/"
                                                                            + definition["namePrefix"] + "x"))
    assert not permitted(statements, request("sagemaker:AddTags", jobs + definition["namePrefix"] + "now-1"))
    assert permitted(statements, request("iam:PassRole", job_role, **to_sagemaker))
    assert not permitted(statements, request("iam:PassRole", job_role, iam__PassedToService="lambda.amazonaws.com"))
    assert not permitted(statements, request("iam:PassRole", job_role))
    roles = [Resolver(main_template_json)({"Fn::GetAtt": [k, "Arn"]}) for k, v in main_template_json["Resources"].items()
             if v["Type"] == "AWS::IAM::Role"]
    passable = {role for role in roles if permitted(statements, request("iam:PassRole", role, **to_sagemaker))}
    # the job's role, and the training pipeline's that trials and imports run under (their own routes)
    env = lambda_environment(main_template_json, PREDICT)
    assert passable == {job_role, env["TRIAL_ROLE_ARN"], env["IMPORT_ROLE_ARN"]}

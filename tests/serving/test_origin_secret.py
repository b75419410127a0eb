"""The origin secret on AWS: the API Lambda refuses requests without CloudFront's header, follows a
rotation (pending and current accepted, the previous one only for its grace period, then a replay),
and the rotation Lambda moves the regional web ACL and CloudFront's origin header along with it.

Secrets Manager, WAFv2 and CloudFront are moto's; the rotation runs its four steps as Secrets
Manager calls them."""

import importlib.util
import json
import sys
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.serving.test_predict_lambda import IMAGE, TABLE, Context, api_event, aws, endpoint_result, predict_app, seed  # noqa: F401
from tests.serving.test_access import as_station, as_user

import origin_secret  # noqa: E402  (lambda/predict is on sys.path through test_predict_lambda)

ROOT = Path(__file__).resolve().parents[2]
HEADER = "X-Origin-Verify"
PREDICT = {"class_name": "tiles", "image_base64": IMAGE}
TOKEN_2 = "c0ffee00-0000-4000-8000-0000000000b2"


def load_rotation():
    spec = importlib.util.spec_from_file_location("rotate", ROOT / "lambda" / "origin_rotation" / "rotate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


@pytest.fixture
def secret(aws, monkeypatch):  # noqa: F811
    client = boto3.client("secretsmanager")
    arn = client.create_secret(Name="ivadas-dev-origin", SecretString="first-value")["ARN"]
    monkeypatch.setenv("ORIGIN_VERIFY_SECRET_ARN", arn)
    monkeypatch.setenv("ACCESS_CONTROL", "enforce")
    monkeypatch.setattr(origin_secret, "_secret", None)
    return arn


def recorded() -> list:
    return boto3.resource("dynamodb").Table(TABLE).scan()["Items"]


def through_cloudfront(event: dict, value: str) -> dict:
    event["headers"][HEADER] = value
    return event


def send(event):
    response = predict_app.handler(event, Context())
    return response["statusCode"], json.loads(response["body"])


def test_a_request_straight_to_the_api_url_is_403_and_nothing_is_recorded(secret):
    seed(endpoint_result())
    status, body = send(as_user(api_event("POST", "/predict", PREDICT), "ana", "inspector"))
    assert status == 403 and body["error"]["code"] == "forbidden" and "public URL" in body["error"]["message"]
    status, body = send(through_cloudfront(as_user(api_event("POST", "/predict", PREDICT), "ana", "inspector"), "guessed"))
    assert status == 403
    assert recorded() == []
    status, _ = send(through_cloudfront(as_user(api_event("POST", "/predict", PREDICT), "ana", "inspector"), "first-value"))
    assert status == 200 and len(recorded()) == 1


def test_station_callers_on_the_station_stage_need_no_origin_header_but_others_do(secret):
    seed(endpoint_result())
    station = as_station(api_event("POST", "/predict", PREDICT))
    station["requestContext"]["stage"] = "stations"
    assert send(station)[0] == 200
    elsewhere = as_station(api_event("POST", "/predict", PREDICT))  # a key id on the main stage proves nothing
    assert send(elsewhere)[0] == 403
    unidentified = api_event("POST", "/predict", PREDICT)
    unidentified["requestContext"]["stage"] = "stations"
    assert send(unidentified)[0] == 403
    assert len(recorded()) == 1


def test_a_rotation_accepts_pending_and_current_and_refuses_the_old_value_after_the_grace(secret):
    client, clock = boto3.client("secretsmanager"), Clock()
    check = origin_secret.OriginSecret(secret, client=client, clock=clock, grace_s=600)
    assert check.accepts("first-value") and not check.accepts("second-value") and not check.accepts(None)
    client.put_secret_value(SecretId=secret, ClientRequestToken=TOKEN_2, SecretString="second-value",
                            VersionStages=["AWSPENDING"])
    clock.now += origin_secret.REFRESH_FLOOR_S  # a value it does not know makes it look again, at most this often
    assert check.accepts("second-value") and check.accepts("first-value")
    client.update_secret_version_stage(SecretId=secret, VersionStage="AWSCURRENT", MoveToVersionId=TOKEN_2,
                                       RemoveFromVersionId=_current(client, secret))
    clock.now += origin_secret.CACHE_S
    assert check.accepts("second-value") and check.accepts("first-value")  # CloudFront's edges still switching
    clock.now += 600
    assert check.accepts("second-value") and not check.accepts("first-value")  # now a replay


def test_a_replayed_old_secret_after_rotation_is_403_and_nothing_is_recorded(secret, monkeypatch):
    client = boto3.client("secretsmanager")
    client.put_secret_value(SecretId=secret, SecretString="second-value")  # rotated: the old value is AWSPREVIOUS
    monkeypatch.setattr(origin_secret, "GRACE_S", 0)
    seed(endpoint_result())
    status, body = send(through_cloudfront(as_user(api_event("POST", "/predict", PREDICT), "ana", "inspector"), "first-value"))
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert recorded() == []
    status, _ = send(through_cloudfront(as_user(api_event("POST", "/predict", PREDICT), "ana", "inspector"), "second-value"))
    assert status == 200


def _current(client, arn) -> str:
    stages = client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    return next(version for version, labels in stages.items() if "AWSCURRENT" in labels)


# ------------------------------------------------------------------------------ the rotation Lambda


@pytest.fixture
def edge(monkeypatch):
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        secrets = boto3.client("secretsmanager")
        arn = secrets.create_secret(Name="origin", SecretString="first-value")["ARN"]
        wafv2, cloudfront = boto3.client("wafv2"), boto3.client("cloudfront")
        rotate = load_rotation()
        monkeypatch.setenv("ORIGIN_HEADER", HEADER)
        monkeypatch.setenv("WEB_ACL_RULE", "OriginSecretRequired")
        acl = wafv2.create_web_acl(
            Name="ivadas-dev-api-origin", Scope="REGIONAL", DefaultAction={"Allow": {}},
            VisibilityConfig={"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": "acl"},
            Rules=[{"Name": "OriginSecretRequired", "Priority": 0, "Action": {"Block": {}},
                    "Statement": {"NotStatement": {"Statement": rotate.header_matches("first-value")}},
                    "VisibilityConfig": {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": "r"}}])
        monkeypatch.setenv("WEB_ACL_NAME", "ivadas-dev-api-origin")
        monkeypatch.setenv("WEB_ACL_ID", acl["Summary"]["Id"])
        distribution = cloudfront.create_distribution(DistributionConfig={
            "CallerReference": "ivadas", "Comment": "", "Enabled": True,
            "Origins": {"Quantity": 2, "Items": [
                {"Id": "site", "DomainName": "site.s3.eu-west-1.amazonaws.com", "S3OriginConfig": {"OriginAccessIdentity": ""}},
                {"Id": "api", "DomainName": "abc.execute-api.eu-west-1.amazonaws.com",
                 "CustomHeaders": {"Quantity": 1, "Items": [{"HeaderName": HEADER, "HeaderValue": "first-value"}]},
                 "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "https-only"}}]},
            "DefaultCacheBehavior": {"TargetOriginId": "site", "ViewerProtocolPolicy": "https-only",
                                     "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}}, "MinTTL": 0}})
        monkeypatch.setenv("DISTRIBUTION_ID", distribution["Distribution"]["Id"])
        clients = {"secretsmanager": secrets, "wafv2": wafv2, "cloudfront": cloudfront}
        yield rotate, clients, arn


def run_rotation(rotate, clients, arn, token, steps=("createSecret", "setSecret", "testSecret", "finishSecret")):
    for step in steps:
        rotate.handler({"SecretId": arn, "ClientRequestToken": token, "Step": step}, None, clients=clients)


def test_rotation_moves_the_web_acl_and_cloudfront_to_the_new_value_in_order(edge):
    rotate, clients, arn = edge
    token = "c0ffee00-0000-4000-8000-000000000001"
    clients, secrets = rotation_started(clients, token), clients["secretsmanager"]
    run_rotation(rotate, clients, arn, token, steps=("createSecret",))
    new = secrets.get_secret_value(SecretId=arn, VersionStage="AWSPENDING")["SecretString"]
    assert new != "first-value" and len(new) == rotate.PASSWORD_LENGTH
    run_rotation(rotate, clients, arn, token, steps=("createSecret",))  # repeated: the same pending value
    assert secrets.get_secret_value(SecretId=arn, VersionStage="AWSPENDING")["SecretString"] == new
    run_rotation(rotate, clients, arn, token, steps=("setSecret",))
    assert sorted(rotate.accepted_by_web_acl(clients["wafv2"])) == sorted(["first-value", new])
    assert rotate.origin_header(clients["cloudfront"]) == new
    run_rotation(rotate, clients, arn, token, steps=("testSecret", "finishSecret"))
    assert secrets.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"] == new
    assert secrets.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")["SecretString"] == "first-value"
    site = clients["cloudfront"].get_distribution_config(Id=__import__("os").environ["DISTRIBUTION_ID"])
    assert site["DistributionConfig"]["Origins"]["Items"][0]["Id"] == "site"  # the other origin is untouched


def test_the_rotation_test_step_fails_when_cloudfront_did_not_take_the_value(edge):
    rotate, clients, arn = edge
    token = "c0ffee00-0000-4000-8000-000000000002"
    clients = rotation_started(clients, token)
    run_rotation(rotate, clients, arn, token, steps=("createSecret",))
    rotate.update_web_acl(clients["wafv2"], ["first-value"])  # setSecret never ran
    with pytest.raises(RuntimeError, match="web ACL"):
        run_rotation(rotate, clients, arn, token, steps=("testSecret",))
    assert clients["secretsmanager"].get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"] == "first-value"


def test_a_token_that_is_not_pending_is_refused(edge):
    rotate, clients, arn = edge
    with pytest.raises(ValueError, match="not a version"):
        run_rotation(rotate, clients, arn, "c0ffee00-0000-4000-8000-00000000dead", steps=("createSecret",))


class RotationStarted:
    """Secrets Manager as the rotation function sees it once RotateSecret has begun: the new version
    id is labelled AWSPENDING before it has a value (moto cannot hold a version without a value, so
    this client adds the label to what describe_secret answers until createSecret writes one)."""

    def __init__(self, client, token):
        self._client, self._token = client, token

    def __getattr__(self, name):
        return getattr(self._client, name)

    def describe_secret(self, **kwargs):
        answer = self._client.describe_secret(**kwargs)
        answer.setdefault("VersionIdsToStages", {}).setdefault(self._token, ["AWSPENDING"])
        return answer


def rotation_started(clients, token):
    return {**clients, "secretsmanager": RotationStarted(clients["secretsmanager"], token)}

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


# ------------------------------------------------------------------------------ the grace period, at the WAF too


def test_after_the_grace_the_web_acl_refuses_the_old_value_as_the_lambda_does(edge, monkeypatch):
    rotate, clients, arn = edge
    monkeypatch.setenv("SECRET_ARN", arn)
    monkeypatch.setenv("ORIGIN_SECRET_GRACE_S", "600")
    token = "c0ffee00-0000-4000-8000-000000000003"
    run_rotation(rotate, rotation_started(clients, token), arn, token)
    new = clients["secretsmanager"].get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
    clock = Clock()
    check = origin_secret.OriginSecret(arn, client=clients["secretsmanager"], clock=clock)  # the Lambda's grace: the same setting
    assert check.grace_s == 600

    def agree() -> set[str]:
        """The values both gates let through (asserting that they let through the same ones)."""
        rotate.handler({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}, None,
                       clients=clients, clock=clock)
        at_waf = set(rotate.accepted_by_web_acl(clients["wafv2"]))
        check.refresh()
        in_lambda = {v for v in ("first-value", new, "guessed") if check.accepts(v)}
        assert at_waf == in_lambda, (at_waf, in_lambda)
        return at_waf

    assert agree() == {"first-value", new}  # CloudFront's edges are still switching
    clock.now += 599
    assert agree() == {"first-value", new}
    clock.now += 2
    assert agree() == {new}  # the old value is a replay now, at the WAF too
    acl = clients["wafv2"].get_web_acl(Name="ivadas-dev-api-origin", Scope="REGIONAL", Id=__import__("os").environ["WEB_ACL_ID"])
    assert agree() == {new}  # nothing left to change: the ACL is not written again
    again = clients["wafv2"].get_web_acl(Name="ivadas-dev-api-origin", Scope="REGIONAL", Id=__import__("os").environ["WEB_ACL_ID"])
    assert again["LockToken"] == acl["LockToken"]


def test_a_rotation_begun_without_a_value_yet_changes_nothing_and_breaks_neither_gate(edge, monkeypatch):
    rotate, clients, arn = edge
    monkeypatch.setenv("SECRET_ARN", arn)
    token = "c0ffee00-0000-4000-8000-000000000004"
    started = rotation_started(clients, token)

    class Listed:  # what ListSecretVersionIds shows once RotateSecret has begun (the pending id, no value yet)
        def __init__(self, client):
            self._client = client

        def __getattr__(self, name):
            return getattr(self._client, name)

        def list_secret_version_ids(self, **kwargs):
            answer = self._client.list_secret_version_ids(**kwargs)
            answer["Versions"].append({"VersionId": token, "VersionStages": ["AWSPENDING"], "CreatedDate": answer["Versions"][0]["CreatedDate"]})
            return answer

    listed = {**started, "secretsmanager": Listed(started["secretsmanager"])}
    rotate.handler({"source": "aws.events"}, None, clients=listed)
    assert rotate.accepted_by_web_acl(clients["wafv2"]) == ["first-value"]
    check = origin_secret.OriginSecret(arn, client=listed["secretsmanager"])
    assert check.accepts("first-value") and not check.accepts("guessed")


def acl_answer(lock_token: str, accepted: list[str]) -> dict:
    header = "x-origin-verify"
    matches = [{"ByteMatchStatement": {"FieldToMatch": {"SingleHeader": {"Name": header}}, "PositionalConstraint": "EXACTLY",
                                       "SearchString": v.encode(), "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}
               for v in accepted]
    statement = {"OrStatement": {"Statements": matches}} if len(matches) > 1 else matches[0]
    visibility = {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": "m"}
    return {"LockToken": lock_token, "WebACL": {
        "Name": "ivadas-dev-api-origin", "Id": "acl-id", "ARN": "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/ivadas-dev-api-origin/acl-id",
        "DefaultAction": {"Allow": {}}, "VisibilityConfig": visibility,
        "Rules": [{"Name": "OriginSecretRequired", "Priority": 0, "Action": {"Block": {}},
                   "Statement": {"NotStatement": {"Statement": statement}}, "VisibilityConfig": visibility}]}}


@pytest.fixture
def stubbed_waf(monkeypatch):
    from botocore.stub import Stubber

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
                       "ORIGIN_HEADER": HEADER, "WEB_ACL_RULE": "OriginSecretRequired", "WEB_ACL_NAME": "ivadas-dev-api-origin",
                       "WEB_ACL_ID": "acl-id"}.items():
        monkeypatch.setenv(key, value)
    rotate = load_rotation()
    monkeypatch.setattr(rotate, "LOCK_PAUSE_S", 0)
    wafv2 = boto3.client("wafv2")
    with Stubber(wafv2) as stubber:
        yield rotate, wafv2, stubber
        stubber.assert_no_pending_responses()


def _get(stubber, lock_token, accepted):
    stubber.add_response("get_web_acl", acl_answer(lock_token, accepted),
                         {"Name": "ivadas-dev-api-origin", "Id": "acl-id", "Scope": "REGIONAL"})


def _update_params(lock_token: str) -> dict:
    from botocore.stub import ANY

    return {"Name": "ivadas-dev-api-origin", "Scope": "REGIONAL", "Id": "acl-id", "DefaultAction": {"Allow": {}},
            "Rules": ANY, "VisibilityConfig": ANY, "LockToken": lock_token}


def test_a_web_acl_changed_by_another_writer_is_read_again_and_written_with_the_fresh_lock_token(stubbed_waf):
    rotate, wafv2, stubber = stubbed_waf
    _get(stubber, "token-1", ["old"])
    stubber.add_client_error("update_web_acl", service_error_code="WAFOptimisticLockException", http_status_code=400,
                             service_message="AWS WAF couldn't save your changes because someone changed the resource "
                                             "after you started to edit it.", expected_params=_update_params("token-1"))
    _get(stubber, "token-2", ["old", "other"])
    stubber.add_response("update_web_acl", {"NextLockToken": "token-3"}, _update_params("token-2"))
    asked = []

    def wanted():
        asked.append(1)
        return ["current", "pending"]

    assert rotate.update_web_acl(wafv2, wanted) == ["current", "pending"]
    assert len(asked) == 2  # the wanted values are read again with the ACL


def test_a_web_acl_that_keeps_changing_stops_the_step_with_aws_s_error(stubbed_waf):
    rotate, wafv2, stubber = stubbed_waf
    for attempt in range(rotate.LOCK_ATTEMPTS):
        _get(stubber, f"token-{attempt}", ["old"])
        stubber.add_client_error("update_web_acl", service_error_code="WAFOptimisticLockException", http_status_code=400,
                                 expected_params=_update_params(f"token-{attempt}"))
    with pytest.raises(wafv2.exceptions.WAFOptimisticLockException):
        rotate.update_web_acl(wafv2, ["current"])


def test_a_web_acl_already_accepting_the_wanted_values_is_not_written(stubbed_waf):
    rotate, wafv2, stubber = stubbed_waf
    _get(stubber, "token-1", ["pending", "current"])
    assert rotate.update_web_acl(wafv2, ["current", "pending"], only_if_different=True) is None


def test_the_web_acl_s_other_settings_are_written_back_as_they_were(stubbed_waf):
    """UpdateWebACL replaces the whole specification: what the rotation does not change must go back unchanged."""
    from botocore.stub import ANY

    rotate, wafv2, stubber = stubbed_waf
    answer = acl_answer("token-1", ["old"])
    settings = {"Description": "origin secret", "TokenDomains": ["example.com"],
                "CustomResponseBodies": {"refused": {"ContentType": "APPLICATION_JSON", "Content": '{"error": {}}'}}}
    answer["WebACL"].update(settings)
    stubber.add_response("get_web_acl", answer, {"Name": "ivadas-dev-api-origin", "Id": "acl-id", "Scope": "REGIONAL"})
    stubber.add_response("update_web_acl", {"NextLockToken": "token-2"}, {**_update_params("token-1"), **settings})
    assert rotate.update_web_acl(wafv2, ["current"]) == ["current"]

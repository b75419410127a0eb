"""Who may call which route: the predict Lambda's own decision (lambda/predict/access.py), from the
claims, API key id or IAM ARN that API Gateway (or the local gateway) puts in the event."""

import json

import boto3
import pytest

from tests.serving.test_predict_lambda import IMAGE, TABLE, Context, api_event, aws, endpoint_result, predict_app, seed  # noqa: F401

import access  # noqa: E402  (lambda/predict is on sys.path through test_predict_lambda)


def as_user(event: dict, name: str, *groups: str, groups_format=", ".join) -> dict:
    claims = {"cognito:username": name, "sub": f"sub-{name}", "token_use": "id"}
    if groups:
        claims["cognito:groups"] = groups_format(groups)
    event["requestContext"]["authorizer"] = {"claims": claims}
    return event


def as_station(event: dict, key_id="k3y1d") -> dict:
    event["requestContext"]["identity"]["apiKeyId"] = key_id
    return event


def as_iam(event: dict) -> dict:
    event["requestContext"]["identity"]["userArn"] = "arn:aws:iam::123456789012:role/line-3-station"
    return event


def send(event: dict):
    response = predict_app.handler(event, Context())
    return response["statusCode"], json.loads(response["body"])


def recorded() -> list:
    return boto3.resource("dynamodb").Table(TABLE).scan()["Items"]


@pytest.fixture
def enforced(aws, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ACCESS_CONTROL", "enforce")


PREDICT = {"class_name": "tiles", "image_base64": IMAGE}


@pytest.mark.parametrize("groups", [("inspector",), ("engineer",), ("admin",), ("inspector", "engineer")])
def test_every_group_may_inspect_and_the_verdict_is_recorded(enforced, groups):
    seed(endpoint_result())
    status, body = send(as_user(api_event("POST", "/predict", PREDICT), "ana", *groups))
    assert status == 200 and body["is_anomaly"] is True
    assert len(recorded()) == 1


@pytest.mark.parametrize("identify", [as_station, as_iam])
def test_station_keys_and_iam_callers_inspect_and_nothing_else(enforced, identify):
    seed(endpoint_result())
    status, _ = send(identify(api_event("POST", "/predict", PREDICT)))
    assert status == 200 and len(recorded()) == 1
    for method, path in (("GET", "/inspections"), ("GET", "/models"), ("GET", "/assets"), ("POST", "/trainings")):
        status, body = send(identify(api_event(method, path)))
        assert status == 403 and body["error"]["code"] == "forbidden", (method, path)


def test_no_credential_is_401_and_nothing_is_recorded(enforced):
    seed(endpoint_result())
    status, body = send(api_event("POST", "/predict", PREDICT))
    assert status == 401 and body["error"]["code"] == "unauthorized" and "request_id" in body
    assert recorded() == []
    status, body = send(api_event("GET", "/inspections"))
    assert status == 401 and body["error"]["code"] == "unauthorized"


def test_signed_in_without_a_group_may_do_nothing(enforced):
    seed(endpoint_result())
    status, body = send(as_user(api_event("POST", "/predict", PREDICT), "newcomer"))
    assert status == 403 and "no group" in body["error"]["message"]
    assert recorded() == []


def test_the_health_check_needs_no_credential(enforced, monkeypatch):
    import routes_models

    monkeypatch.setattr(routes_models, "describe_all", lambda: {"patchcore": {"version": "ivadas-training-patchcore/3"}})
    status, body = send(api_event("GET", "/health"))
    assert status == 200 and body["status"] == "ok"
    status, _ = send(api_event("GET", "/models"))
    assert status == 401


@pytest.mark.parametrize("method, path", [("POST", "/trainings"), ("POST", "/models/patchcore/versions/3/approve"),
                                          ("POST", "/datasets/tiles/images"), ("DELETE", "/datasets/tiles/images/a.png"),
                                          ("POST", "/inspections/abc/feedback"),
                                          ("POST", "/feedback"), ("POST", "/versions/patchcore/3/approval"), ("GET", "/trials")])
def test_an_inspector_on_an_engineer_route_is_403_and_an_engineer_passes_the_check(enforced, method, path):
    status, body = send(as_user(api_event(method, path, {}), "ana", "inspector"))
    assert status == 403 and body["error"]["code"] == "forbidden" and "engineer" in body["error"]["message"]
    status, body = send(as_user(api_event(method, path, {}), "eve", "engineer"))
    assert status != 403 and status != 401  # the route itself answers (404 while it does not exist)


def test_a_route_nobody_classified_needs_admin(enforced):
    status, body = send(as_user(api_event("GET", "/users"), "eve", "engineer"))
    assert status == 403 and "admin" in body["error"]["message"]
    status, body = send(as_user(api_event("GET", "/users"), "root", "admin"))
    assert status == 404  # allowed, and then no such route


def test_without_enforcement_the_local_stack_stays_open(aws, monkeypatch):  # noqa: F811
    monkeypatch.delenv("ACCESS_CONTROL", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    seed(endpoint_result())
    status, _ = send(api_event("POST", "/predict", PREDICT))
    assert status == 200 and len(recorded()) == 1


def test_a_real_lambda_without_the_setting_is_closed(aws, monkeypatch):  # noqa: F811
    monkeypatch.delenv("ACCESS_CONTROL", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ivadas-dev-predict")
    status, _ = send(api_event("GET", "/inspections"))
    assert status == 401


@pytest.mark.parametrize("value, expected", [
    ("engineer", {"engineer"}), ("[engineer, admin]", {"engineer", "admin"}), ("engineer,admin", {"engineer", "admin"}),
    ("[inspector engineer]", {"inspector", "engineer"}), (["admin"], {"admin"}), (None, set()), ("", set())])
def test_groups_in_every_shape_api_gateway_passes_them(value, expected):
    assert access.parse_groups(value) == expected


def test_the_caller_name_is_the_signed_in_user(enforced):
    event = as_user(api_event("POST", "/models/patchcore/versions/3/approve", {}), "eve", "engineer")
    assert access.caller_name(event) == "eve"
    assert access.caller_name(as_station(api_event("POST", "/predict"))) == "k3y1d"

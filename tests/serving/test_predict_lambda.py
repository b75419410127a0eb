"""The predict Lambda's handler against moto-backed AWS (DynamoDB, S3, SageMaker runtime)."""

import base64
import json
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws

from tests.serving.conftest import Context, api_event

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))
import endpoint_client  # noqa: E402
import predict_app  # noqa: E402
import routes_predict  # noqa: E402

TABLE, BUCKET = "ivadas-inspections", "ivadas-artifacts"
ENDPOINTS = {"patchcore": "ivadas-patchcore", "softpatch": "ivadas-softpatch"}


def call(method, path, body=None, query=None):
    response = predict_app.handler(api_event(method, path, body, query), Context())
    return response["statusCode"], json.loads(response["body"])


def endpoint_result(is_anomaly=True, class_name="tiles", score=0.91) -> dict:
    return {"class_name": class_name, "model": {"kind": "patchcore", "version": "ivadas-training-patchcore/3"},
            "anomaly_score": score, "raw_score": 7.5, "threshold": 0.5, "raw_threshold": 5.0, "is_anomaly": is_anomaly,
            "regions": [{"box": [1, 2, 30, 40], "score": score, "area": 900}] if is_anomaly else [],
            "timing_ms": {"model": 50.0, "total": 55.0}}


def seed(result: dict) -> None:
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    backend = sagemakerruntime_backends["123456789012"]["us-east-1"]
    backend.results_queue.append((json.dumps(result), "application/json", "AllTraffic", ""))


@pytest.fixture
def aws(monkeypatch):
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "INSPECTION_LOG": "dynamodb", "INSPECTION_TABLE": TABLE, "INSPECTION_BUCKET": BUCKET,
           "STORE_ANOMALOUS_IMAGES": "true", "ENDPOINT_NAMES": json.dumps(ENDPOINTS)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        boto3.client("dynamodb").create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "day", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "day", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
        monkeypatch.setattr(endpoint_client, "_runtime", None)
        monkeypatch.setattr(routes_predict, "_log", None)
        yield


IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100).decode()


def test_predict_calls_the_endpoint_and_records_the_inspection(aws, capsys):
    seed(endpoint_result())
    status, body = call("POST", "/predict", {"class_name": "tiles", "image_base64": IMAGE})
    assert status == 200 and body["is_anomaly"] is True and body["regions"][0]["box"] == [1, 2, 30, 40]
    assert body["model"] == {"kind": "patchcore", "version": "ivadas-training-patchcore/3"}
    assert body["request_id"] and body["timing_ms"]["endpoint_call"] >= 0
    items = boto3.resource("dynamodb").Table(TABLE).scan()["Items"]
    assert len(items) == 1 and items[0]["class_name"] == "tiles" and items[0]["is_anomaly"] is True
    assert items[0]["request_id"] == body["request_id"] and items[0]["image_key"].startswith(f"s3://{BUCKET}/inspections/")
    key = items[0]["image_key"].split(f"s3://{BUCKET}/")[1]
    assert boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read() == base64.b64decode(IMAGE)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{") and "_aws" in line]
    names = {m["Name"] for line in emitted for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"Latency", "EndpointLatency", "Anomalies", "Inspections"} <= names
    anomalies = next(line for line in emitted if "Anomalies" in line)
    assert anomalies["class_name"] == "tiles" and anomalies["model"] == "patchcore" and anomalies["Anomalies"] in (1, 1.0, [1.0])


def test_inspections_are_listed_and_filtered(aws):
    for i, (anomalous, name) in enumerate([(True, "tiles"), (False, "tiles"), (True, "wood")]):
        seed(endpoint_result(anomalous, name))
        image = base64.b64encode(b"image-%d" % i).decode()
        assert call("POST", "/predict", {"class_name": name, "image_base64": image})[0] == 200
    status, body = call("GET", "/inspections", query={"class_name": "tiles"})
    assert status == 200 and [r["is_anomaly"] for r in body["inspections"]] == [False, True]
    status, body = call("GET", "/inspections", query={"verdict": "anomaly"})
    assert {r["class_name"] for r in body["inspections"]} == {"tiles", "wood"}
    assert all(r["image_key"] for r in body["inspections"])
    assert call("GET", "/inspections", query={"verdict": "maybe"})[0] == 400


def test_limits_are_enforced_before_anything_is_called(aws, monkeypatch):
    monkeypatch.setattr(routes_predict, "invoke", lambda *a, **k: pytest.fail("the endpoint must not be called"))
    huge = {"class_name": "tiles", "image_base64": "A" * (6 * 1024 * 1024)}
    status, body = call("POST", "/predict", huge)
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    big_image = {"class_name": "tiles", "image_base64": base64.b64encode(b"\x00" * 4_500_000).decode()}
    assert call("POST", "/predict", big_image)[0] == 413
    assert call("POST", "/predict", "{oops")[1]["error"]["code"] == "bad_request"
    assert call("POST", "/predict", {"class_name": "tiles"})[0] == 400
    assert call("POST", "/predict", {"class_name": "tiles", "image_base64": IMAGE, "model": "yolo"})[1]["error"]["code"] == "unknown_model"
    assert call("POST", "/predict", {"class_name": "tiles", "image_base64": IMAGE, "threshold": -1})[0] == 400
    assert call("POST", "/predict", {"class_name": "tiles", "image_base64": "!!"})[1]["error"]["message"] == "image_base64 is not valid base64"
    assert call("POST", "/predict/batch", {"items": [{"class_name": "t", "image_base64": IMAGE}] * 9})[0] == 413
    assert call("GET", "/nowhere")[0] == 404


def model_error(status: int, body: dict) -> ClientError:
    return ClientError({"Error": {"Code": "ModelError", "Message": "Received client error"},
                        "OriginalStatusCode": status, "OriginalMessage": json.dumps(body)}, "InvokeEndpoint")


@pytest.mark.parametrize("failure, status, code", [
    (model_error(404, {"error": {"code": "unknown_class", "message": "unknown class 'bolts'"}}), 404, "unknown_class"),
    (model_error(422, {"error": {"code": "unusable_image", "message": "truncated"}}), 422, "unusable_image"),
    (model_error(500, {"error": {"code": "internal_error", "message": "boom"}}), 502, "model_error"),
    (ClientError({"Error": {"Code": "ValidationError", "Message": "Endpoint ivadas-patchcore of account 1 not found."}}, "InvokeEndpoint"), 503, "model_not_deployed"),
    (ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "InvokeEndpoint"), 429, "throttled"),
    (ReadTimeoutError(endpoint_url="https://runtime.sagemaker"), 504, "endpoint_timeout"),
])
def test_endpoint_failures_map_to_the_contract(aws, monkeypatch, failure, status, code):
    class Failing:
        def invoke_endpoint(self, **kwargs):
            raise failure

    monkeypatch.setattr(endpoint_client, "_runtime", Failing())
    got_status, body = call("POST", "/predict", {"class_name": "tiles", "image_base64": IMAGE})
    assert (got_status, body["error"]["code"]) == (status, code)


def test_health_and_models_say_which_model_is_unavailable(aws, monkeypatch):
    described = {"kind": "patchcore", "version": "v3", "classes": {"tiles": {"threshold": 0.5}},
                 "backbone": {"name": "resnet18", "weights": "random(seed=0)", "precision": "fp32"}, "metrics": {}}

    down = {"ivadas-softpatch": ClientError({"Error": {"Code": "ValidationError", "Message": "Endpoint ivadas-softpatch not found."}},
                                            "InvokeEndpoint")}

    class HalfUp:
        def invoke_endpoint(self, EndpointName, **kwargs):
            if EndpointName in down:
                raise down[EndpointName]
            import io

            return {"Body": io.BytesIO(json.dumps(described).encode())}

    monkeypatch.setattr(endpoint_client, "_runtime", HalfUp())
    # a kind never deployed (nothing approved) is not an outage; one that is deployed and failing is
    status, health = call("GET", "/health")
    assert status == 200 and health["status"] == "ok"
    assert health["models"]["patchcore"] == {"available": True, "deployed": True, "version": "v3"}
    assert health["models"]["softpatch"] == {"available": False, "deployed": False,
                                             "reason": "no softpatch model is deployed yet; approve a softpatch version to serve it"}
    down["ivadas-softpatch"] = ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "InvokeEndpoint")
    status, health = call("GET", "/health")
    assert status == 200 and health["status"] == "degraded" and health["models"]["softpatch"]["deployed"] is True
    down["ivadas-patchcore"] = down.pop("ivadas-softpatch")  # the default image kind missing degrades too
    down["ivadas-patchcore"] = ClientError({"Error": {"Code": "ValidationError", "Message": "Endpoint ivadas-patchcore not found."}},
                                           "InvokeEndpoint")
    status, health = call("GET", "/health")
    assert status == 200 and health["status"] == "degraded"
    down.clear()
    down["ivadas-softpatch"] = ClientError({"Error": {"Code": "ValidationError", "Message": "Endpoint ivadas-softpatch not found."}},
                                           "InvokeEndpoint")
    status, listing = call("GET", "/models")
    patchcore = next(m for m in listing["models"] if m["kind"] == "patchcore")
    assert patchcore["version"] == "v3" and "RANDOM" in patchcore["warning"]
    assert next(m for m in listing["models"] if m["kind"] == "softpatch")["available"] is False
    status, _ = call("POST", "/predict", {"class_name": "tiles", "image_base64": IMAGE, "model": "softpatch"})
    assert status == 503


def test_the_input_chooses_the_default_kind_and_a_kind_refuses_the_other_modality(aws, monkeypatch):
    monkeypatch.setenv("ENDPOINT_NAMES", json.dumps({**ENDPOINTS, "machine_kind": "ivadas-machine_kind"}))
    monkeypatch.setenv("MODEL_MODALITIES", json.dumps({"patchcore": "image", "softpatch": "image", "machine_kind": "sensors"}))
    monkeypatch.setenv("DEFAULT_MODELS", json.dumps({"image": "softpatch", "sensors": "machine_kind"}))
    asked = []

    class Recording:
        def invoke_endpoint(self, EndpointName, Body, **kwargs):
            import io

            asked.append((EndpointName, json.loads(Body)))
            return {"Body": io.BytesIO(json.dumps(endpoint_result()).encode())}

    monkeypatch.setattr(endpoint_client, "_runtime", Recording())
    window = {"class_name": "pump-1", "window": [[1.0, 2], [1.5, 2]], "sensors": ["flow", "pressure"]}
    assert call("POST", "/predict", window)[0] == 200
    assert asked[-1][0] == "ivadas-machine_kind" and asked[-1][1]["window"] == [[1.0, 2], [1.5, 2]]
    assert call("POST", "/predict", {"class_name": "tiles", "image_base64": IMAGE})[0] == 200
    assert asked[-1][0] == "ivadas-softpatch"
    count = len(asked)
    refusals = [
        ({**window, "model": "patchcore"}, 415, "the patchcore model takes image_base64, not window"),
        ({"class_name": "tiles", "image_base64": IMAGE, "model": "machine_kind"}, 415, "takes window, not image_base64"),
        ({**window, "image_base64": IMAGE}, 400, "exactly one of image_base64"),
        ({"class_name": "pump-1"}, 400, "exactly one of image_base64"),
        ({**window, "window": [[1.0, 2.0], [1.0]]}, 400, "same number of readings"),
        ({**window, "window": [[1.0, "2.0"], [1.0, 2.0]]}, 400, "window"),
        ({**window, "sensors": ["flow"]}, 400, "sensors names 1 columns"),
        ({**window, "timestamps": ["2026-01-01T00:00:00"]}, 400, "timestamps has 1 entries for 2 rows"),
        ({**window, "window": []}, 400, "window"),
        ({"class_name": "tiles", "image_base64": IMAGE, "sensors": ["a"]}, 400, "belong to a window"),
        ({"items": [{"class_name": "tiles", "image_base64": IMAGE}, window]}, 400, "images or windows, not both"),
    ]
    for body, status, words in refusals:
        path = "/predict/batch" if "items" in body else "/predict"
        got_status, got = call("POST", path, body)
        assert got_status == status and words in got["error"]["message"], (body, got)
    nan = '{"class_name": "pump-1", "window": [[NaN, 1.0]], "sensors": ["flow", "pressure"]}'
    got_status, got = call("POST", "/predict", nan)
    assert got_status == 400 and "NaN or infinite" in got["error"]["message"]
    assert len(asked) == count, "nothing refused may reach an endpoint"


def test_a_verdict_with_nan_or_infinity_is_neither_answered_nor_logged(aws, monkeypatch):
    class Answering:
        def __init__(self, text):
            self.text = text

        def invoke_endpoint(self, **kwargs):
            import io

            return {"Body": io.BytesIO(self.text.encode())}

    good = json.dumps(endpoint_result())
    for bad in (good.replace("7.5", "Infinity"), good.replace("0.91", "NaN", 1), good.replace("7.5", "-Infinity"),
                good.replace("7.5", "1e999")):  # a number beyond a float is read as infinity, no constant involved
        monkeypatch.setattr(endpoint_client, "_runtime", Answering(bad))
        response = predict_app.handler(api_event("POST", "/predict", {"class_name": "tiles", "image_base64": IMAGE}), Context())
        got = json.loads(response["body"], parse_constant=lambda name: pytest.fail(f"the answer holds {name}"))
        assert response["statusCode"] == 502 and got["error"]["code"] == "model_error", got
        assert "NaN or infinite" in got["error"]["message"]
    assert boto3.resource("dynamodb").Table(TABLE).scan()["Items"] == []
    monkeypatch.setattr(endpoint_client, "_runtime", Answering(good))
    assert call("POST", "/predict", {"class_name": "tiles", "image_base64": IMAGE})[0] == 200


def test_an_answer_that_is_not_json_is_a_model_error_and_a_describe_reads_nan_as_null(aws, monkeypatch):
    """A 200 whose body is no JSON (an error page) is the model's failure, not the API's (502, not 500). An
    endpoint image from before strict JSON writes an unknown metric of its description as NaN: the kind
    is still up, the metric null."""
    import io

    described = '{"kind": "patchcore", "version": "v3", "classes": {"tiles": {"threshold": 0.5}}, "metrics": {"f1": NaN, "x": 1e999}}'

    class Answering:
        def invoke_endpoint(self, Body, **kwargs):
            return {"Body": io.BytesIO((described if '"describe"' in Body else "<html>bad gateway</html>").encode())}

    monkeypatch.setattr(endpoint_client, "_runtime", Answering())
    status, body = call("POST", "/predict", {"class_name": "tiles", "image_base64": IMAGE})
    assert (status, body["error"]["code"]) == (502, "model_error") and "not JSON" in body["error"]["message"]
    status, health = call("GET", "/health")
    assert status == 200 and health["models"]["patchcore"] == {"available": True, "deployed": True, "version": "v3"}
    status, listing = call("GET", "/models")
    patchcore = next(m for m in listing["models"] if m["kind"] == "patchcore")
    assert patchcore["metrics"] == {"f1": None, "x": None}


def test_a_model_error_whose_error_is_text_is_passed_on_as_the_models_failure():
    error = ClientError({"Error": {"Code": "ModelError"}, "OriginalStatusCode": 400, "OriginalMessage": '{"error": "bad"}'},
                        "InvokeEndpoint")
    got = endpoint_client.endpoint_error("patchcore", "ivadas-patchcore", error)
    assert (got.status, got.code) == (502, "model_error")


def test_an_integer_too_large_for_a_float_is_a_400(aws, monkeypatch):
    monkeypatch.setattr(routes_predict, "invoke", lambda *a, **k: pytest.fail("the endpoint must not be called"))
    huge = "9" * 400
    window = '{"class_name": "pump-1", "window": [[1.0, READING], [1.5, 2]], "sensors": ["flow", "pressure"], "timestamps": [1, STAMP]}'
    for reading, stamp, words in [(huge, "2", "window row 0, column 1"), ("-" + huge, "2", "window row 0, column 1"),
                                  ("2", huge, "timestamp of row 1"), ("2", "-" + huge, "timestamp of row 1"),
                                  ("2", "1e300", "timestamp of row 1"), ("9" * 5000, "2", "too many digits")]:
        body = window.replace("READING", reading).replace("STAMP", stamp)
        for path, text in (("/predict", body), ("/predict/batch", '{"items": [' + body + "]}")):
            status, got = call("POST", path, text)
            assert status == 400 and got["error"]["code"] == "bad_request" and words in got["error"]["message"], (path, got)
            assert len(got["error"]["message"]) < 300


def test_a_reading_or_timestamp_that_is_not_a_number_is_refused_in_the_user_s_words(aws, monkeypatch):
    monkeypatch.setattr(routes_predict, "invoke", lambda *a, **k: pytest.fail("the endpoint must not be called"))
    rows = [[1.0, 2.0] for _ in range(6)]
    for reading, shown in (("abc", "'abc'"), (None, "null"), (True, "true"), ([1], "[1]")):
        window = [list(row) for row in rows]
        window[5][0] = reading
        single = {"class_name": "pump-1", "window": window, "sensors": ["flow", "pressure"]}
        for path, body, where in (("/predict", single, ""), ("/predict/batch", {"items": [single, single]}, "item 0, ")):
            status, got = call("POST", path, body)
            assert (status, got["error"]["code"]) == (400, "bad_request"), got
            assert got["error"]["message"] == f"{where}window row 5, column 0: {shown} is not a number", got
    status, got = call("POST", "/predict", {"class_name": "pump-1", "window": [[1.0], 2.0]})
    assert status == 400 and got["error"]["message"].startswith("window row 1: "), got
    stamps = {"class_name": "pump-1", "window": rows[:2], "sensors": ["flow", "pressure"], "timestamps": [1, None]}
    status, got = call("POST", "/predict", stamps)
    assert status == 400 and got["error"]["message"] == "timestamp of row 1: null is neither ISO 8601 text nor epoch seconds"


def test_a_check_of_the_whole_request_answers_its_own_words_without_pydantic_s_prefix(aws):
    image = {"class_name": "tiles", "image_base64": IMAGE}
    for path, body, message in [
        ("/predict", {"class_name": "pump-1"}, "send exactly one of image_base64 (an image) or window (sensor readings)"),
        ("/predict", {"class_name": "pump-1", "window": [[1.0], [1.0, 2.0]]},
         "every row of window must hold the same number of readings, at least one"),
        ("/predict", {**image, "sensors": ["a"]}, "sensors and timestamps belong to a window, not an image"),
        ("/predict/batch", {"items": [image, {"class_name": "pump-1", "window": [[1.0]]}]}, "a batch holds images or windows, not both"),
        ("/predict/batch", {"items": [image, {"class_name": "tiles"}]},
         "item 1: send exactly one of image_base64 (an image) or window (sensor readings)"),
    ]:
        status, got = call("POST", path, body)
        assert status == 400 and got["error"]["message"] == message, (body, got)
        assert "Value error" not in got["error"]["message"] and not got["error"]["message"].startswith("body")

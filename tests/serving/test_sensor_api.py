"""The API and the scheduled sensor feed with sensor models behind a SageMaker-runtime client that
answers as AWS does (the endpoint's own 4xx arrive as ModelError with the original status)."""

from __future__ import annotations

import io
import json
import sys
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from inference.errors import IvadasError
from inference.model import load_model

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))
import endpoint_client  # noqa: E402
import predict_app  # noqa: E402
import routes_predict  # noqa: E402
import sensor_feed  # noqa: E402

ENDPOINTS = {"patchcore": "ivadas-patchcore", "pca": "ivadas-pca", "lstm_ae": "ivadas-lstm_ae"}


class Runtime:
    """`sagemaker-runtime` for in-process models: InvokeEndpoint with AWS's error shapes."""

    def __init__(self, models: dict):
        self.models = models  # endpoint name → ServedModel
        self.calls = 0

    def invoke_endpoint(self, EndpointName, ContentType, Accept, Body, InferenceId=None):
        self.calls += 1
        model = self.models.get(EndpointName)
        if model is None:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": f"Endpoint {EndpointName} not found."}}, "InvokeEndpoint")
        request = json.loads(Body)
        try:
            answer = {**model.describe(), "metrics": {}} if request.get("describe") else model.predict(request)
        except IvadasError as exc:
            raise ClientError({"Error": {"Code": "ModelError", "Message": "Received client error"},
                               "OriginalStatusCode": exc.status, "OriginalMessage": json.dumps(exc.to_dict())}, "InvokeEndpoint")
        return {"Body": io.BytesIO(json.dumps(answer).encode()), "ContentType": "application/json"}


class Context:
    function_name = "ivadas-predict"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ivadas-predict"
    aws_request_id = "lambda-request"

    def __init__(self, remaining_ms: int = 29_000):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self):
        return self.remaining_ms


@pytest.fixture(scope="module")
def windowed_bundle(sensor_data, tmp_path_factory):
    """An LSTM autoencoder over 8-row windows: scoring a row needs the 7 before it."""
    from pipelines.kinds import TrainingJob, train

    output = tmp_path_factory.mktemp("bundle-lstm") / "model.tar.gz"
    train(TrainingJob("lstm_ae", sensor_data, ["pump-1"], {"window": "8", "epochs": "2", "hidden": "8"}, output, quiet=True))
    return output


@pytest.fixture
def api(monkeypatch, tmp_path, sensor_bundle, windowed_bundle):
    runtime = Runtime({"ivadas-pca": load_model(sensor_bundle[0]), "ivadas-lstm_ae": load_model(windowed_bundle)})
    env = {"ENDPOINT_NAMES": json.dumps(ENDPOINTS),
           "MODEL_MODALITIES": json.dumps({"patchcore": "image", "pca": "sensors", "lstm_ae": "sensors"}),
           "DEFAULT_MODELS": json.dumps({"image": "patchcore", "sensors": "pca"}),
           "INSPECTION_LOG": "sqlite", "INSPECTION_DB": str(tmp_path / "log.sqlite"), "SENSOR_STORE": str(tmp_path / "store")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(endpoint_client, "_runtime", runtime)
    monkeypatch.setattr(routes_predict, "_log", None)
    monkeypatch.setattr(sensor_feed, "_min_rows", {})
    return runtime


def call(method, path, body=None, query=None):
    event = {"resource": "/{proxy+}", "path": path, "httpMethod": method, "headers": {"Content-Type": "application/json"},
             "multiValueHeaders": {}, "queryStringParameters": query, "multiValueQueryStringParameters": None,
             "pathParameters": {"proxy": path[1:]}, "stageVariables": None, "isBase64Encoded": False,
             "body": None if body is None else json.dumps(body),
             "requestContext": {"requestId": str(uuid.uuid4()), "stage": "prod", "path": path, "httpMethod": method,
                                "resourcePath": "/{proxy+}", "identity": {"sourceIp": "10.0.0.1"}}}
    response = predict_app.handler(event, Context())
    return response["statusCode"], json.loads(response["body"])


def pump_rows(sensor_data, asset="pump-2"):
    from pipelines.sensors.datasets import read_asset

    data = read_asset(sensor_data, asset)
    return data.columns, data.segments[0]


def test_a_window_goes_to_the_default_sensor_model_and_its_events_are_logged(api, sensor_data):
    columns, segment = pump_rows(sensor_data)
    body = {"class_name": "pump-2", "window": segment.values[760:830].tolist(), "sensors": columns,
            "timestamps": segment.timestamps[760:830]}
    status, result = call("POST", "/predict", body)
    assert status == 200 and result["model"]["kind"] == "pca" and result["is_anomaly"] is True
    assert result["contributions"][0]["sensor"] == "bearing_temp" and result["events"] and len(result["scores"]) == 70
    assert result["peak_at"] in segment.timestamps[760:830] and result["rows"] == 70
    status, history = call("GET", "/inspections", query={"class_name": "pump-2"})
    assert status == 200 and history["inspections"][0]["detail"]["events"] == result["events"]
    assert history["inspections"][0]["detail"]["contributions"] == result["contributions"][:3]


def test_bad_windows_are_refused_by_the_api_or_passed_on_from_the_model(api, sensor_data):
    columns, segment = pump_rows(sensor_data)
    good = {"class_name": "pump-2", "window": segment.values[600:610].tolist(), "sensors": columns}
    calls = api.calls
    for body, status, words in [
        ({**good, "window": [["1.5"] * 6]}, 400, "window"),
        ({**good, "window": segment.values[:1].tolist() * 10_001}, 413, "window"),
        ({**good, "timestamps": ["2026-01-01T00:00:00Z"]}, 400, "timestamps has 1 entries for 10 rows"),
        ({**good, "image_base64": "aGVsbG8="}, 400, "exactly one of image_base64"),
        ({**good, "model": "patchcore"}, 415, "takes image_base64, not window"),
        ({**good, "model": "bananas"}, 404, "unknown model"),
    ]:
        got_status, got = call("POST", "/predict", body)
        assert got_status == status and words in got["error"]["message"], (body.keys(), got)
    assert api.calls == calls  # refused before any endpoint was called
    got_status, got = call("POST", "/predict", {**good, "sensors": columns[:-1] + ["humidity"]})
    assert got_status == 400 and "unknown sensor(s) ['humidity']" in got["error"]["message"]
    got_status, got = call("POST", "/predict", {**good, "class_name": "pump-9"})
    assert got_status == 404 and got["error"]["code"] == "unknown_class"
    status, listed = call("GET", "/models")
    sensors = {m["kind"]: m for m in listed["models"] if m["modality"] == "sensors"}
    assert sensors["pca"]["default"] is True and "pump-2" in sensors["pca"]["classes"]
    assert sensors["pca"]["classes"]["pump-2"]["sensors"] == columns


def write_file(store: Path, asset: str, name: str, columns, timestamps, rows, text=None) -> None:
    folder = store / "sensors" / asset / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [",".join(["timestamp", *columns])] + [",".join([t, *map(repr, r)]) for t, r in zip(timestamps, rows)]
    (folder / name).write_text(text if text is not None else "\n".join(lines) + "\n")


def test_the_feed_scores_files_as_one_series_and_keeps_what_it_cannot_score(api, sensor_data, tmp_path):
    store = tmp_path / "store"
    columns, segment = pump_rows(sensor_data, "pump-1")
    values, stamps = segment.values.tolist(), segment.timestamps
    write_file(store, "pump-1", "a-0600.csv", columns, stamps[600:700], values[600:700])
    write_file(store, "pump-1", "b-0700.csv", columns, stamps[700:830], values[700:830])
    write_file(store, "pump-1", "c-bad.csv", columns, [], [], text="timestamp,motor_current\n2026-03-04T00:00:00Z,broken\n")
    write_file(store, "pump-1", "d-unknown.csv", ["humidity"], stamps[830:840], [[1.0]] * 10)

    summary = sensor_feed.handler({"model": "lstm_ae"}, Context(300_000))
    assert summary["assets"]["pump-1"] == {"scored": 2, "failed": 2, "waiting": 0}
    folder = store / "sensors" / "pump-1"
    assert sorted(p.name for p in (folder / "processed").iterdir()) == ["a-0600.csv", "b-0700.csv"]
    assert not any((folder / "incoming").iterdir())
    reasons = {p.name: json.loads(p.read_text())["reason"] for p in (folder / "failed").glob("*.error.json")}
    assert "not a number" in reasons["c-bad.csv.error.json"] and "humidity" in reasons["d-unknown.csv.error.json"]

    first, second = [json.loads(p.read_text()) for p in sorted((folder / "results").iterdir())]
    assert first["scores"][:7] == [None] * 7 and all(s is not None for s in first["scores"][7:])
    assert all(s is not None for s in second["scores"])  # the first file's last rows gave the context
    reference = load_model_for(api, "ivadas-lstm_ae").predict(
        {"class_name": "pump-1", "window": values[600:830], "sensors": columns, "timestamps": stamps[600:830]})
    assert second["scores"] == reference["scores"][100:]  # scored as one continuous series

    status, series = call("GET", "/assets/pump-1/series", query={"limit": "200"})
    assert status == 200 and len(series["timestamps"]) == 200 and series["timestamps"][-1] == stamps[829]
    assert series["scores"] == (first["scores"] + second["scores"])[-200:] and series["sensors"] == columns
    status, assets = call("GET", "/assets")
    assert assets["assets"][0]["asset"] == "pump-1" and assets["assets"][0]["failed_files"] == 2
    status, events = call("GET", "/assets/pump-1/events")
    assert status == 200 and [e["start"] for e in events["events"]] == sorted({e["start"] for e in events["events"]}, reverse=True)
    status, history = call("GET", "/inspections", query={"class_name": "pump-1"})
    assert len(history["inspections"]) == 2 and history["inspections"][0]["request_id"].startswith("feed-")
    assert call("GET", "/assets/pump-3/series")[0] == 404 and call("GET", "/assets/..%2Fetc/series")[0] == 400


def test_a_file_waits_while_the_endpoint_is_down(api, sensor_data, tmp_path):
    columns, segment = pump_rows(sensor_data, "pump-1")
    write_file(tmp_path / "store", "pump-1", "a.csv", columns, segment.timestamps[:20], segment.values[:20].tolist())
    api.models.clear()  # no endpoint: SageMaker answers ValidationError "not found"
    summary = sensor_feed.handler({"model": "pca"}, Context(300_000))
    assert summary["assets"]["pump-1"] == {"scored": 0, "failed": 0, "waiting": 1}
    assert (tmp_path / "store" / "sensors" / "pump-1" / "incoming" / "a.csv").is_file()


def load_model_for(runtime: Runtime, endpoint: str):
    return runtime.models[endpoint]


def test_an_event_running_on_into_the_next_file_is_one_event():
    import routes_sensors

    def event(start, end, ongoing=False, continues=False, peak=0.8):
        return {"start": f"t{start}", "end": f"t{end}", "start_s": start, "end_s": end, "ongoing": ongoing,
                "continues": continues, "peak_score": peak}

    parts = [{"events": [event(0, 10), event(50, 60, ongoing=True)]},
             {"events": [event(61, 70, continues=True, peak=0.9), event(80, 85, ongoing=True)]},
             {"events": [event(100, 110)]}]  # the last file starts below the threshold: a new event
    merged = routes_sensors.merged_events(parts)
    assert [(e["start"], e["end"]) for e in merged] == [("t0", "t10"), ("t50", "t70"), ("t80", "t85"), ("t100", "t110")]
    assert merged[1]["peak_score"] == 0.9 and merged[1]["duration_s"] == 20 and merged[1]["ongoing"] is False


def test_the_feed_takes_epoch_seconds_as_the_api_does(api, sensor_data, tmp_path):
    columns, segment = pump_rows(sensor_data, "pump-1")
    epochs = [f"{t:.0f}" for t in segment.times[600:640]]
    write_file(tmp_path / "store", "pump-1", "epoch.csv", columns, epochs, segment.values[600:640].tolist())
    write_file(tmp_path / "store", "pump-1", "nan.csv", columns, ["nan"] + epochs[1:], segment.values[600:640].tolist())
    summary = sensor_feed.handler({"model": "pca"}, Context(300_000))
    assert summary["assets"]["pump-1"] == {"scored": 1, "failed": 1, "waiting": 0}
    [result] = [json.loads(p.read_text()) for p in (tmp_path / "store/sensors/pump-1/results").iterdir()]
    assert result["timestamps"] == epochs and result["scores"][-1] is not None


def strict_call(method, path, body=None, query=None):
    """`call` with the body sent as given (text is sent verbatim) and the answer read as strict JSON."""
    def refuse(name):
        raise AssertionError(f"the answer holds {name}")

    text = body if isinstance(body, str) or body is None else json.dumps(body)
    event = {"resource": "/{proxy+}", "path": path, "httpMethod": method, "headers": {"Content-Type": "application/json"},
             "multiValueHeaders": {}, "queryStringParameters": query, "multiValueQueryStringParameters": None,
             "pathParameters": {"proxy": path[1:]}, "stageVariables": None, "isBase64Encoded": False, "body": text,
             "requestContext": {"requestId": str(uuid.uuid4()), "stage": "prod", "path": path, "httpMethod": method,
                                "resourcePath": "/{proxy+}", "identity": {"sourceIp": "10.0.0.1"}}}
    response = predict_app.handler(event, Context())
    return response["statusCode"], json.loads(response["body"], parse_constant=refuse)


def test_an_out_of_range_reading_is_refused_and_never_logged(api, sensor_data, sensor_bundle):
    columns, segment = pump_rows(sensor_data)
    sensor = sensor_bundle[1].manifest["classes"]["pump-2"]["spec"]["sensors"][1]
    good = {"class_name": "pump-2", "window": segment.values[600:661].tolist(), "sensors": columns,
            "timestamps": segment.timestamps[600:661]}
    status, reference = strict_call("POST", "/predict", good)
    assert status == 200
    for reading in (1e39, -1e39, 1e308, 3e38):
        bad = {**good, "window": [list(row) for row in good["window"]]}
        bad["window"][20][columns.index(sensor)] = reading
        status, got = strict_call("POST", "/predict", bad)
        assert status == 400 and got["error"]["code"] == "bad_request", (reading, got)
        assert f"window row 20, sensor {sensor!r}" in got["error"]["message"] and "out of range" in got["error"]["message"]
    status, history = strict_call("GET", "/inspections", query={"class_name": "pump-2"})
    assert status == 200 and len(history["inspections"]) == 1  # the good window's verdict alone
    assert {r["raw_score"] for r in history["inspections"]} == {reference["raw_score"]}


def test_an_integer_too_large_for_a_float_is_refused_before_the_endpoint(api, sensor_data):
    columns, segment = pump_rows(sensor_data)
    good = {"class_name": "pump-2", "window": segment.values[600:661].tolist(), "sensors": columns,
            "timestamps": segment.timestamps[600:661]}
    good["window"][5][2], good["timestamps"][7] = 123456.75, "STAMP"
    stamp = json.dumps(segment.timestamps[607])
    text = json.dumps(good)
    huge = "9" * 400
    calls = api.calls
    for body, words in [
        (text.replace("123456.75", huge).replace('"STAMP"', stamp), "window row 5, column 2: an integer of 400 digits"),
        (text.replace("123456.75", "-" + huge).replace('"STAMP"', stamp), "window row 5, column 2: an integer of 400 digits"),
        (text.replace("123456.75", "1.5").replace('"STAMP"', huge), "timestamp of row 7: a number of 400 digits"),
        (text.replace("123456.75", "1.5").replace('"STAMP"', "1e308"), "timestamp of row 7: 1e+308"),
        (text.replace("123456.75", "9" * 5000).replace('"STAMP"', stamp), "too many digits"),
    ]:
        status, got = strict_call("POST", "/predict", body)
        assert status == 400 and words in got["error"]["message"], (words, got)
        status, got = strict_call("POST", "/predict/batch", '{"items": [' + body + "]}")
        assert status == 400 and words in got["error"]["message"], (words, got)
    assert api.calls == calls  # refused before any endpoint was called
    ok = text.replace("123456.75", "1.5").replace('"STAMP"', stamp)
    assert strict_call("POST", "/predict", ok)[0] == 200


def test_stored_nan_or_infinity_is_answered_as_null(api, tmp_path, monkeypatch):
    import inspection_log
    import routes_monitoring

    log = inspection_log.from_environment()
    record = inspection_log.inspection_record({"class_name": "pump-2", "model": {"kind": "pca", "version": "1"},
                                               "anomaly_score": 1.0, "raw_score": 2.0, "threshold": 0.5, "is_anomaly": True},
                                              "old-record")
    log.record({**record, "raw_score": float("inf"), "detail": '{"input_statistics": {"sensors": {"flow": {"std": Infinity}}}}'})
    status, history = strict_call("GET", "/inspections")
    assert status == 200 and history["inspections"][0]["raw_score"] is None
    assert history["inspections"][0]["detail"]["input_statistics"]["sensors"]["flow"]["std"] is None
    (tmp_path / "monitoring" / "latest").mkdir(parents=True)
    (tmp_path / "monitoring" / "latest" / "summary.json").write_text('{"drift": {"flow": NaN}, "rate": 0.5}')
    monkeypatch.setenv("MONITORING_STORE", str(tmp_path / "monitoring"))
    monkeypatch.setattr(routes_monitoring, "_store", None)
    status, summary = strict_call("GET", "/monitoring")
    assert status == 200 and summary["summary"] == {"drift": {"flow": None}, "rate": 0.5}
    with pytest.raises(ValueError):  # nor is a new one written
        inspection_log.inspection_record({"class_name": "pump-2", "model": {"kind": "pca", "version": "1"},
                                          "anomaly_score": 1.0, "raw_score": float("inf"), "threshold": 0.5,
                                          "is_anomaly": True}, "new-record")

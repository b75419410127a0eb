"""A sensor model's endpoint as a real process: windows in JSON and CSV, explanations, and every bad input."""

from __future__ import annotations

import json
import warnings

import pytest

from tests.serving.conftest import http, png_bytes, serving


@pytest.fixture(scope="module")
def sensor_endpoint(sensor_bundle, tmp_path_factory):
    with serving(sensor_bundle[0].parent, tmp_path_factory.mktemp("sensor-endpoint") / "server.log", workers=1) as url:
        yield url


@pytest.fixture(scope="module")
def pump(sensor_data):
    from pipelines.sensors.datasets import read_asset

    data = read_asset(sensor_data, "pump-2")
    return data.columns, data.segments[0]


def invoke(url, body, headers=None):
    return http("POST", url + "/invocations", body, headers)


def window(pump, start: int, stop: int, **extra) -> dict:
    columns, segment = pump
    return {"class_name": "pump-2", "window": segment.values[start:stop].tolist(), "sensors": columns,
            "timestamps": segment.timestamps[start:stop], **extra}


def test_ping_and_describe_name_the_sensors(sensor_endpoint, sensor_bundle):
    assert http("GET", sensor_endpoint + "/ping") == (200, {"status": "healthy", "kind": "pca", "modality": "sensors"})
    status, described = invoke(sensor_endpoint, {"describe": True})
    assert status == 200 and described["modality"] == "sensors" and described["version"] == "sensors-1"
    assert described["outputs"] == ["contributions", "events", "scores"]
    pump = described["classes"]["pump-2"]
    spec = sensor_bundle[1].manifest["classes"]["pump-2"]["spec"]
    assert pump["sensors"][:2] == ["motor_current", "flow_rate"] and pump["threshold"] == 0.5
    assert pump["min_rows"] == spec["context"] + spec["smoothing"] - 1 >= 1


def test_a_drifting_bearing_is_an_event_driven_by_its_temperature(sensor_endpoint, pump):
    status, result = invoke(sensor_endpoint, window(pump, 700, 840))  # the bearing drifts over rows 768-804
    assert status == 200 and result["is_anomaly"] is True and result["rows"] == 140
    assert result["contributions"][0]["sensor"] == "bearing_temp"
    assert abs(sum(c["share"] for c in result["contributions"]) - 1.0) < 1e-3
    assert result["events"] and result["events"][0]["top_sensors"][0]["sensor"] == "bearing_temp"
    first = result["events"][0]
    assert first["start"] in pump[1].timestamps[768:840] and first["duration_s"] >= 0
    scored = [s for s in result["scores"] if s is not None]
    assert len(result["scores"]) == 140 and len(scored) == result["scored_rows"] and max(scored) == result["anomaly_score"]


def test_a_normal_stretch_is_normal_and_outputs_can_be_chosen(sensor_endpoint, pump):
    status, result = invoke(sensor_endpoint, window(pump, 570, 670, outputs=["events"]))  # before the first fault (672)
    assert status == 200 and result["is_anomaly"] is False and result["events"] == []
    assert "contributions" not in result and "scores" not in result


def test_columns_in_any_order_and_a_csv_body_give_the_same_answer(sensor_endpoint, pump):
    columns, segment = pump
    _, reference = invoke(sensor_endpoint, window(pump, 740, 820))
    order = list(reversed(range(len(columns))))
    shuffled = {"class_name": "pump-2", "sensors": [columns[i] for i in order],
                "window": [[row[i] for i in order] for row in segment.values[740:820].tolist()],
                "timestamps": segment.timestamps[740:820]}
    _, reordered = invoke(sensor_endpoint, shuffled)
    assert reordered["anomaly_score"] == reference["anomaly_score"] and reordered["peak_at"] == reference["peak_at"]
    lines = [";".join(["datetime", *columns, "anomaly"])]
    lines += [";".join([t, *map(repr, row), "0"]) for t, row in zip(segment.timestamps[740:820], segment.values[740:820].tolist())]
    status, from_csv = invoke(sensor_endpoint, "\n".join(lines).encode(),
                              {"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": "class_name=pump-2"})
    assert status == 200 and from_csv["anomaly_score"] == reference["anomaly_score"] and from_csv["peak_at"] == reference["peak_at"]


def test_every_bad_window_is_a_clear_error_and_the_server_keeps_serving(sensor_endpoint, pump, sensor_bundle):
    columns, segment = pump
    spec = sensor_bundle[1].manifest["classes"]["pump-2"]["spec"]
    needed = spec["context"] + spec["smoothing"] - 1
    good = window(pump, 600, 600 + needed + 5)
    rows, stamps = good["window"], good["timestamps"]
    cases = [
        ({**good, "sensors": None, "window": [r[:-1] for r in rows]}, 400, "6 sensors"),
        ({**good, "sensors": columns[:-1] + ["humidity"]}, 400, "unknown sensor(s) ['humidity']"),
        ({**good, "sensors": columns[:-1] + [columns[0]]}, 400, "more than once"),
        ({**good, "window": [rows[0][:3] + ["hot"] + rows[0][4:]] + rows[1:]}, 400, "is not a number"),
        ({**good, "window": [[True] + rows[0][1:]] + rows[1:]}, 400, "is not a number"),
        ({**good, "window": []}, 400, "non-empty list"),
        ({**good, "window": rows[:3] + [rows[3][:-1]] + rows[4:]}, 400, "same number of readings"),
        ({**good, "timestamps": stamps[:5] + [stamps[4]] + stamps[6:]}, 400, "repeats the row before"),
        ({**good, "timestamps": list(reversed(stamps))}, 400, "is earlier than the row before"),
        ({**good, "timestamps": stamps[:-1]}, 400, "one entry per row"),
        ({**good, "timestamps": ["yesterday"] + stamps[1:]}, 400, "not ISO 8601"),
        ({**good, "window": rows[:needed - 1], "timestamps": stamps[:needed - 1]}, 422, f"needs at least {needed}"),
        ({**good, "window": rows * (10_000 // len(rows) + 1), "timestamps": None}, 413, "at most 10000"),
        ({**good, "class_name": "pump-9"}, 404, "unknown asset 'pump-9'"),
        ({"class_name": "pump-2", "image_base64": b64_png()}, 415, "sensor windows: send window"),
    ]
    for body, status, message in cases:
        got_status, got = invoke(sensor_endpoint, {k: v for k, v in body.items() if v is not None})
        assert (got_status, got["error"]["code"] != "") == (status, True), (message, got)
        assert message in got["error"]["message"], (message, got)
    nan_body = json.dumps(good).replace(repr(rows[2][1]), "NaN", 1).encode()
    status, got = invoke(sensor_endpoint, nan_body)
    assert status == 400 and "NaN or infinite" in got["error"]["message"]
    status, got = invoke(sensor_endpoint, png_bytes(), {"Content-Type": "image/png", "X-Amzn-SageMaker-Custom-Attributes": "class_name=pump-2"})
    assert status == 415 and "text/csv" in got["error"]["message"]
    status, got = invoke(sensor_endpoint, b"datetime,motor_current\n2026-01-01,oops\n",
                         {"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": "class_name=pump-2"})
    assert status == 400 and "'oops' is not a number" in got["error"]["message"]
    assert invoke(sensor_endpoint, good)[0] == 200


def test_an_image_model_asked_for_a_window_says_what_it_takes(endpoint):
    status, got = http("POST", endpoint + "/invocations", {"class_name": "tiles", "window": [[1.0, 2.0]]})
    assert status == 415 and "send image_base64, not window" in got["error"]["message"]


def b64_png() -> str:
    import base64

    return base64.b64encode(png_bytes()).decode()


def strict_invoke(url, body: bytes):
    """POST /invocations, the answer read as strict JSON (NaN or Infinity in it fails the test)."""
    import urllib.error
    import urllib.request

    def refuse(name):
        raise AssertionError(f"the answer holds {name}")

    request = urllib.request.Request(url + "/invocations", data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read(), parse_constant=refuse)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read(), parse_constant=refuse)


HUGE = "9" * 400  # an integer no float holds


def test_an_out_of_range_reading_is_refused_naming_its_row_and_sensor(sensor_endpoint, pump, sensor_bundle):
    columns, segment = pump
    spec = sensor_bundle[1].manifest["classes"]["pump-2"]["spec"]
    good = window(pump, 600, 661)  # 61 rows
    status, reference = strict_invoke(sensor_endpoint, json.dumps(good).encode())
    assert status == 200 and reference["scored_rows"] == 61 - spec["context"] - spec["smoothing"] + 2
    sensor = spec["sensors"][1]
    for reading in (1e39, -1e39, 1e308, 3e38):
        body = {**good, "window": [list(row) for row in good["window"]]}
        body["window"][20][columns.index(sensor)] = reading
        status, got = strict_invoke(sensor_endpoint, json.dumps(body).encode())
        assert status == 400 and got["error"]["code"] == "bad_request", (reading, got)
        assert f"window row 20, sensor {sensor!r}" in got["error"]["message"] and "out of range" in got["error"]["message"]
        batch = {"instances": [good, body]}
        status, got = strict_invoke(sensor_endpoint, json.dumps(batch).encode())
        assert status == 200 and got["predictions"][0]["scored_rows"] == reference["scored_rows"]
        assert got["predictions"][1]["status"] == 400 and "window row 20" in got["predictions"][1]["error"]["message"]
    status, again = strict_invoke(sensor_endpoint, json.dumps(good).encode())
    assert status == 200 and again["scores"] == reference["scores"]


def test_an_integer_too_large_for_a_float_is_a_400_wherever_it_is(sensor_endpoint, pump):
    good = window(pump, 600, 661)
    marked = {**good, "window": [list(row) for row in good["window"]], "timestamps": list(good["timestamps"])}
    marked["window"][5][2], marked["timestamps"][7] = 123456.75, "STAMP"

    def body(reading=repr(good["window"][5][2]), stamp=json.dumps(good["timestamps"][7]), tail="") -> bytes:
        text = json.dumps(marked).replace("123456.75", reading).replace('"STAMP"', stamp)
        return (text[:-1] + tail + "}").encode()

    assert json.loads(body()) == good
    cases = [
        (body(reading=HUGE), "window row 5, column 2"),
        (body(reading="-" + HUGE), "window row 5, column 2"),
        (body(stamp=HUGE), "timestamp of row 7"),
        (body(stamp="1e308"), "timestamp of row 7"),
        (body(tail=', "threshold": ' + HUGE), "threshold must be a number in [0, 1]"),
        (body(reading="9" * 5000), "too many digits"),
        (b'{"instances": [' + body(reading=HUGE) + b", " + body() + b"]}", "window row 5, column 2"),
        (b'{"instances": [' + body(stamp=HUGE) + b", " + body() + b"]}", "timestamp of row 7"),
    ]
    for request, words in cases:
        status, got = strict_invoke(sensor_endpoint, request)
        if "predictions" in got:  # the bad item fails alone
            assert status == 200 and got["predictions"][1]["rows"] == 61, got
            status, got = got["predictions"][0]["status"], got["predictions"][0]
        assert status == 400 and words in got["error"]["message"], (words, got)
        assert len(got["error"]["message"]) < 300
    assert strict_invoke(sensor_endpoint, body())[0] == 200


def test_the_cli_refuses_an_out_of_range_reading_in_one_line(sensor_bundle, pump, tmp_path, capsys):
    from infra.cli import main

    columns, segment = pump
    rows = segment.values[600:661].tolist()
    rows[30][1] = 1e39
    lines = [",".join(["datetime", *columns])] + [",".join([t, *map(repr, row)]) for t, row in zip(segment.timestamps[600:661], rows)]
    huge = tmp_path / "huge.csv"
    huge.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy overflow warning on the way
        assert main(["predict", str(huge), "--class", "pump-2", "--model", "pca", "--bundle", str(sensor_bundle[0]), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("error: window row 30, sensor ") and "out of range" in err


def test_the_server_never_answers_nan_or_infinity():
    """A model that yields a non-finite number fails with a logged 500 (its batch item alone), never an
    answer with `Infinity`; a NaN in the bundle's describe metrics is unknown (null)."""
    import io

    from inference.server import InvocationsApp

    class Model:
        kind, modality = "pca", "sensors"

        def predict(self, instance):
            return {"class_name": instance["class_name"], "raw_score": float(instance["raw"])}

    class Holder:
        error = None

        def get(self):
            return Model()

        def describe(self):
            return {"kind": "pca", "metrics": {"auroc": float("nan"), "f1": 0.5}}

    app = InvocationsApp(Holder())

    def post(payload: dict):
        body = json.dumps(payload).encode()
        answer = {}

        def start_response(status, headers):
            answer["status"] = int(status.split()[0])

        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/invocations", "CONTENT_TYPE": "application/json",
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        text = b"".join(app(environ, start_response))
        return answer["status"], json.loads(text, parse_constant=lambda name: pytest.fail(f"the answer holds {name}"))

    assert post({"class_name": "pump-2", "raw": 1.5}) == (200, {"class_name": "pump-2", "raw_score": 1.5})
    status, got = post({"class_name": "pump-2", "raw": "inf"})
    assert status == 500 and got["error"]["code"] == "internal_error"
    status, got = post({"instances": [{"class_name": "a", "raw": "nan"}, {"class_name": "b", "raw": 2}]})
    assert status == 200 and got["predictions"][0]["status"] == 500 and got["predictions"][1] == {"class_name": "b", "raw_score": 2.0}
    assert post({"describe": True}) == (200, {"kind": "pca", "metrics": {"auroc": None, "f1": 0.5}})

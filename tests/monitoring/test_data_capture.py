"""SageMaker data capture as a source of verdicts for monitoring: capture files as SageMaker writes them
(JSON Lines under data-capture/<kind>/<endpoint>/<variant>/yyyy/mm/dd/hh/) read from moto S3 and from a
folder; requests made straight to an endpoint become verdicts with the input statistics the monitor
compares with training; requests the API made (InferenceId marked by the API) are left to the
inspection log, so a verdict is never counted twice."""

import base64
import io
import json
import uuid
from datetime import datetime, timedelta, timezone

import boto3
import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from PIL import Image

from inference.input_statistics import image_statistics
from pipelines.monitoring import capture
from pipelines.monitoring.records import read_dynamodb
from tests.serving.test_predict_lambda import BUCKET, ENDPOINTS, TABLE, aws, call, endpoint_client, endpoint_result  # noqa: F401

HOUR = datetime(2026, 11, 30, 8, tzinfo=timezone.utc)
PATCHCORE_FOLDER = "data-capture/patchcore/ivadas-dev-patchcore/AllTraffic"
PCA_FOLDER = "data-capture/pca/ivadas-dev-pca/AllTraffic"
JSON_TYPES, CSV_TYPES = ("application/json",), ("text/csv",)  # the deploy Lambda's CaptureContentTypeHeader


def capture_entry(mode: str, content_type: str, data: bytes) -> dict:
    """What SageMaker records of one side of a request: text for the configured JSON and CSV content
    types, base64 for anything else."""
    if content_type in JSON_TYPES:
        return {"observedContentType": content_type, "mode": mode, "data": data.decode(), "encoding": "JSON"}
    if content_type in CSV_TYPES:
        return {"observedContentType": content_type, "mode": mode, "data": data.decode(), "encoding": "CSV"}
    return {"observedContentType": content_type, "mode": mode, "data": base64.b64encode(data).decode(), "encoding": "BASE64"}


def capture_line(content_type: str, body: bytes, answer: dict, moment: datetime, inference_id: str | None = None) -> str:
    metadata = {"eventId": str(uuid.uuid4()), "inferenceTime": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return json.dumps({"captureData": {"endpointInput": capture_entry("INPUT", content_type, body),
                                       "endpointOutput": capture_entry("OUTPUT", "application/json", json.dumps(answer).encode())},
                       "eventMetadata": metadata, "eventVersion": "0"})


def png(level: float, seed: int, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(level, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def verdict(class_name: str, kind: str, raw_score: float, **extra) -> dict:
    """An endpoint's answer as inference/ returns it."""
    return {"class_name": class_name, "model": {"kind": kind, "version": f"ivadas-dev-training-{kind}/1"},
            "anomaly_score": 0.2, "raw_score": raw_score, "threshold": 0.5, "raw_threshold": 2.0, "is_anomaly": False,
            "timing_ms": {"model": 12.0}, **extra}


def hour_of_traffic() -> dict[str, list[str]]:
    """One hour of capture of two endpoints: direct calls of every content type the endpoints take, a
    batch, an API call, a describe, a refused request, a broken line and a request of another hour."""
    patchcore, pca = [], []
    image = png(120, 1)
    stats = image_statistics(Image.open(io.BytesIO(image)))
    request = json.dumps({"class_name": "tiles", "image_base64": base64.b64encode(image).decode()}).encode()
    # a JSON request whose answer carries the endpoint's own statistics
    patchcore.append(capture_line("application/json", request, verdict("tiles", "patchcore", 1.1, input_statistics=stats),
                                  HOUR + timedelta(minutes=1), "station-7-000123"))
    # a raw PNG (captured as base64) answered without statistics: computed here from the image
    patchcore.append(capture_line("image/png", png(90, 2), verdict("tiles", "patchcore", 1.2), HOUR + timedelta(minutes=2)))
    # a batch of two
    batch = {"instances": [{"class_name": "tiles", "image_base64": base64.b64encode(png(100 + 10 * i, 3 + i)).decode()}
                           for i in range(2)]}
    patchcore.append(capture_line("application/json", json.dumps(batch).encode(),
                                  {"predictions": [verdict("tiles", "patchcore", 1.0), verdict("tiles", "patchcore", 0.9)]},
                                  HOUR + timedelta(minutes=3)))
    # what the API sent: its verdict is in the inspection log
    patchcore.append(capture_line("application/json", request, verdict("tiles", "patchcore", 1.1, input_statistics=stats),
                                  HOUR + timedelta(minutes=4), "ivadas-api:5f0c1d2e-aaaa-bbbb-cccc-0123456789ab"))
    patchcore.append(capture_line("application/json", b'{"describe": true}', {"kind": "patchcore", "classes": {}},
                                  HOUR + timedelta(minutes=5)))
    patchcore.append(capture_line("application/json", json.dumps({"class_name": "bolts", "image_base64": "AAAA"}).encode(),
                                  {"error": {"code": "unknown_class", "message": "unknown class 'bolts'"}}, HOUR + timedelta(minutes=6)))
    patchcore.append('{"captureData": {"endpointInput": ')
    patchcore.append(capture_line("image/png", png(90, 9), verdict("tiles", "patchcore", 1.2), HOUR + timedelta(hours=2)))
    # a CSV window straight to the sensor endpoint, answered without statistics
    window = b"timestamp,flow,pressure,label\n2026-11-30T08:00:00Z,1.0,10.0,0\n2026-11-30T08:00:01Z,3.0,12.0,0\n"
    pca.append(capture_line("text/csv", window, verdict("pump-1", "pca", 0.4, rows=2, scored_rows=2), HOUR + timedelta(minutes=7)))
    # a JSON window with a missing reading
    instance = {"class_name": "pump-1", "window": [[1.0, None], [2.0, 4.0]], "sensors": ["flow", "pressure"]}
    pca.append(capture_line("application/json", json.dumps(instance).encode(),
                            verdict("pump-1", "pca", 0.5, rows=2, scored_rows=2), HOUR + timedelta(minutes=8)))
    return {f"{PATCHCORE_FOLDER}/2026/11/30/08/{uuid.uuid4()}.jsonl": patchcore,
            f"{PCA_FOLDER}/2026/11/30/08/{uuid.uuid4()}.jsonl": pca}


def check_hour(read: capture.CaptureRead) -> None:
    assert read.counts["verdicts"] == 6 and read.counts["api"] == 1 and read.counts["not_verdicts"] == 2
    assert read.counts["unreadable"] == 1
    records = read.records
    assert [r["timestamp"][11:16] for r in records] == ["08:01", "08:02", "08:03", "08:03", "08:07", "08:08"]
    assert all(r["source"] == "data_capture" and r["verified_label"] is None for r in records)
    assert records[0]["request_id"] == "capture:station-7-000123"  # the caller's own InferenceId names it
    assert {r["request_id"].rsplit("#", 1)[-1] for r in records[2:4]} == {"0", "1"}
    tiles = [r for r in records if r["class_name"] == "tiles"]
    assert [r["model_version"] for r in tiles] == ["ivadas-dev-training-patchcore/1"] * 4
    raw = tiles[1]["detail"]["input_statistics"]
    assert raw == image_statistics(Image.open(io.BytesIO(png(90, 2))))  # computed from the captured image
    assert 85 < raw["brightness"] < 95 and raw["width"] == 48
    assert tiles[0]["detail"]["input_statistics"]["brightness"] == pytest.approx(120, abs=3)
    assert tiles[3]["detail"]["input_statistics"]["brightness"] > tiles[2]["detail"]["input_statistics"]["brightness"]
    csv_window, json_window = (r for r in records if r["class_name"] == "pump-1")
    assert csv_window["detail"]["input_statistics"]["sensors"] == {
        "flow": {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0}, "pressure": {"mean": 11.0, "std": 1.0, "min": 10.0, "max": 12.0}}
    assert csv_window["detail"]["rows"] == 2
    assert json_window["detail"]["input_statistics"]["sensors"]["pressure"] == {"mean": 4.0, "std": 0.0, "min": 4.0, "max": 4.0}


def test_capture_files_on_s3_become_the_direct_traffics_verdicts(aws):
    s3 = boto3.client("s3")
    for key, lines in hour_of_traffic().items():
        s3.put_object(Bucket=BUCKET, Key=key, Body="\n".join(lines).encode())
    s3.put_object(Bucket=BUCKET, Key=f"{PATCHCORE_FOLDER}/2026/11/29/08/old.jsonl", Body=b"not read: another day\n")
    read = capture.read_source(f"s3://{BUCKET}/data-capture", HOUR, HOUR + timedelta(hours=1))
    assert read.counts["files"] == 2
    check_hour(read)


def test_the_same_files_in_a_local_folder_read_the_same(tmp_path):
    for key, lines in hour_of_traffic().items():
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    check_hour(capture.read_source(tmp_path / "data-capture", HOUR, HOUR + timedelta(hours=1)))
    assert capture.read_source(tmp_path / "nothing-captured", HOUR, HOUR + timedelta(hours=1)).records == []
    assert capture.read_source(None, HOUR, HOUR + timedelta(hours=1)).records == []


def test_the_hour_folders_of_a_period_start_an_hour_early():
    assert capture.hour_folders(HOUR + timedelta(minutes=30), HOUR + timedelta(hours=1, minutes=5)) == [
        "2026/11/30/07", "2026/11/30/08", "2026/11/30/09"]


def test_the_api_marks_its_endpoint_calls_and_the_monitor_counts_them_once(aws):
    """POST /predict calls the endpoint with InferenceId = the API's mark + its request id (botocore's
    Stubber checks the call's parameters against the service model); the capture of that very call is
    left to the inspection log, a direct call beside it is counted."""
    assert endpoint_client.API_INFERENCE_PREFIX == capture.API_INFERENCE_PREFIX
    runtime = boto3.client("sagemaker-runtime")
    stubber = Stubber(runtime)
    answer = endpoint_result(is_anomaly=False)
    data = json.dumps(answer).encode()
    stubber.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentType": "application/json"},
                         {"EndpointName": ENDPOINTS["patchcore"], "ContentType": "application/json", "Accept": "application/json",
                          "Body": ANY, "InferenceId": ANY})
    sent = {}
    runtime.meta.events.register("before-parameter-build.sagemaker-runtime.InvokeEndpoint",
                                 lambda params, **kwargs: sent.update(params))
    image = base64.b64encode(png(120, 1)).decode()
    endpoint_client._runtime = runtime  # the fixture puts None back afterwards
    with stubber:
        status, body = call("POST", "/predict", {"class_name": "tiles", "image_base64": image})
    assert status == 200
    assert sent["InferenceId"] == f"ivadas-api:{body['request_id']}"
    now = datetime.now(timezone.utc)
    lines = [capture_line("application/json", sent["Body"].encode(), answer, now, sent["InferenceId"]),
             capture_line("image/png", png(90, 2), verdict("tiles", "patchcore", 7.0), now)]
    boto3.client("s3").put_object(Bucket=BUCKET, Key=f"{PATCHCORE_FOLDER}/{now:%Y/%m/%d/%H}/{uuid.uuid4()}.jsonl",
                                  Body="\n".join(lines).encode())
    since, until = now - timedelta(minutes=5), now + timedelta(minutes=5)
    logged = read_dynamodb(TABLE, since, until)
    captured = capture.read_source(f"s3://{BUCKET}/data-capture", since, until)
    merged = capture.merge(logged, captured.records)
    assert [r["request_id"] for r in logged] == [body["request_id"]]
    assert len(merged) == 2 and captured.counts["api"] == 1
    assert {r.get("source", "inspection_log") for r in merged} == {"inspection_log", "data_capture"}


def test_inference_ids_fit_invoke_endpoints_limit():
    assert endpoint_client.inference_id("a" * 100) == "ivadas-api:" + "a" * 53
    assert len(endpoint_client.inference_id(None)) <= 64 and endpoint_client.inference_id(None).startswith("ivadas-api:")


def test_answers_of_another_shape_are_counted_unreadable_not_fatal():
    moment = HOUR + timedelta(minutes=1)
    for answer in ({"predictions": "nope"}, verdict("tiles", "patchcore", "high"), {**verdict("tiles", "patchcore", 1.0), "model": "x"}):
        event = json.loads(capture_line("application/json", b"{}", answer, moment))
        outcome, records = capture.records_of_event(event, moment)
        assert records == [] and outcome in ("unreadable", "not_verdicts"), answer
    event = json.loads(capture_line("image/png", b"not an image", verdict("tiles", "patchcore", 1.0), moment))
    outcome, [record] = capture.records_of_event(event, moment)  # the verdict counts; its statistics are unknown
    assert outcome == "verdicts" and "input_statistics" not in record["detail"]

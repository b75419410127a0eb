"""The local stack's runtime route writes data capture as SageMaker does (infra/local/capture.py), so a
call made straight to a local endpoint reaches `ivadas monitor` as it would reach the Processing job on
AWS: boto3's sagemaker-runtime client against the route, one direct call and one the API marked."""

import io
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from wsgiref.simple_server import WSGIRequestHandler, make_server

import boto3
import numpy as np
import pytest
from PIL import Image

from infra.local.capture import DataCapture
from infra.local.gateway import EndpointDirectory, Gateway
from pipelines.monitoring import capture

VERDICT = {"class_name": "tiles", "model": {"kind": "patchcore", "version": "ivadas-training-patchcore/1"},
           "anomaly_score": 0.1, "raw_score": 1.0, "threshold": 0.5, "raw_threshold": 2.0, "is_anomaly": False}


class Endpoint(BaseHTTPRequestHandler):
    """An endpoint answering /invocations with a verdict (without statistics: the monitor computes them),
    or its summary when asked to describe itself."""

    def do_POST(self):
        request = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        described = self.headers.get("Content-Type") == "application/json" and json.loads(request).get("describe")
        body = json.dumps({"kind": "patchcore", "classes": {"tiles": {}}} if described else VERDICT).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def serve(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    endpoint = serve(ThreadingHTTPServer(("127.0.0.1", 0), Endpoint))
    writer = DataCapture(tmp_path / "data-capture", {"ivadas-patchcore": "patchcore"}, percent=100)
    gateway = Gateway("runtime", endpoints=EndpointDirectory(fixed={"ivadas-patchcore": f"127.0.0.1:{endpoint.server_address[1]}"}),
                      capture=writer)
    route = serve(make_server("127.0.0.1", 0, gateway, handler_class=Quiet))
    for key, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    yield boto3.client("sagemaker-runtime", endpoint_url=f"http://127.0.0.1:{route.server_address[1]}"), tmp_path
    route.shutdown()
    endpoint.shutdown()


def png(level: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((24, 24, 3), level, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_direct_calls_to_a_local_endpoint_reach_the_monitor_and_the_apis_do_not_twice(runtime):
    client, store = runtime
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    client.invoke_endpoint(EndpointName="ivadas-patchcore", ContentType="image/png", Body=png(90),
                           CustomAttributes="class_name=tiles")
    client.invoke_endpoint(EndpointName="ivadas-patchcore", ContentType="application/json", Body=json.dumps({"describe": True}))
    client.invoke_endpoint(EndpointName="ivadas-patchcore", ContentType="application/json",
                           Body=json.dumps({"class_name": "tiles", "image_base64": "AAAA"}), InferenceId="ivadas-api:abc-123")
    [written] = list((store / "data-capture" / "patchcore" / "ivadas-patchcore" / "AllTraffic").rglob("*.jsonl"))
    lines = [json.loads(line) for line in written.read_text().splitlines()]
    assert [line["captureData"]["endpointInput"]["encoding"] for line in lines] == ["BASE64", "JSON", "JSON"]
    assert lines[2]["eventMetadata"]["inferenceId"] == "ivadas-api:abc-123"
    read = capture.read_source(store / "data-capture", start, datetime.now(timezone.utc) + timedelta(minutes=1))
    assert read.counts["verdicts"] == 1 and read.counts["api"] == 1 and read.counts["not_verdicts"] == 1
    [record] = read.records
    assert record["detail"]["input_statistics"]["brightness"] == pytest.approx(90, abs=0.5)


def test_the_sample_is_the_capture_percentage(tmp_path):
    draws = iter(np.linspace(0, 0.99, 100))
    writer = DataCapture(tmp_path, {"e": "k"}, percent=20, sample=lambda: next(draws))
    written = [writer.record("e", "application/json", b"{}", "application/json", b"{}") for _ in range(100)]
    assert sum(path is not None for path in written) == 20


def test_a_store_whose_endpoints_were_only_called_directly_is_monitored(runtime, capsys):
    from infra.cli import main
    from infra.local.serve_monitor import one_pass

    client, store = runtime
    for level in (80, 90, 100):
        client.invoke_endpoint(EndpointName="ivadas-patchcore", ContentType="image/png", Body=png(level),
                               CustomAttributes="class_name=tiles")
    assert not (store / "inspections").exists()  # no call went through the API: no inspection log yet
    assert main(["monitor", "--store", str(store), "--output", str(store / "report")]) == 0
    assert "3 verdicts (3 from data capture)" in capsys.readouterr().out
    summary = json.loads((store / "report" / "summary.json").read_text())
    assert summary["verdicts"] == 3 and summary["sources"] == {"data_capture": 3}
    one_pass(store, store / "scheduled", 24)  # the local stack's scheduled pass
    assert json.loads((store / "scheduled" / "summary.json").read_text())["verdicts"] == 3
    assert "monitor: 3 verdicts" in capsys.readouterr().out
    # a log the user names must exist, capture or not
    assert main(["monitor", "--store", str(store), "--inspections", str(store / "elsewhere.sqlite")]) == 2
    assert "no inspection log at" in capsys.readouterr().err


def test_a_store_with_neither_log_nor_capture_is_one_clear_error(tmp_path, capsys):
    from infra.cli import main
    from infra.local.serve_monitor import one_pass

    (tmp_path / "data-capture").mkdir()  # capture configured, nothing captured yet
    assert main(["monitor", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: nothing to monitor") and err.count("\n") == 1, err
    one_pass(tmp_path, tmp_path / "scheduled", 24)
    assert "monitor: no inspection and no captured request yet" in capsys.readouterr().out
    assert not (tmp_path / "scheduled").exists()

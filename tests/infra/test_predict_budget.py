"""The predict Lambda's endpoint calls fit inside its own timeout: one attempt, and a read timeout
taken from the invocation's remaining time, so a slow model gets a JSON 504 instead of a killed Lambda.

The endpoint is a real HTTP server on loopback that answers late, reached through boto3's
SageMaker runtime client exactly as on AWS (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME).
"""

import base64
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))
import endpoint_client  # noqa: E402
import predict_app  # noqa: E402

IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100).decode()


class SlowEndpoint(BaseHTTPRequestHandler):
    delay = 0.0
    requests: list[float] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        type(self).requests.append(time.monotonic())
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(type(self).delay)
        body = b'{"class_name": "tiles"}'
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up long ago
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_endpoint(monkeypatch):
    SlowEndpoint.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowEndpoint)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
                       "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": f"http://127.0.0.1:{server.server_port}",
                       "ENDPOINT_NAMES": json.dumps({"patchcore": "ivadas-dev-patchcore"})}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ORIGIN_VERIFY_SECRET_ARN", raising=False)
    monkeypatch.setattr(endpoint_client, "_runtime", None)
    monkeypatch.setattr(endpoint_client, "_runtimes", {})
    monkeypatch.setattr(endpoint_client, "_deadline", None)
    yield SlowEndpoint
    server.shutdown()


def context(remaining_ms: int):
    class Context:
        function_name = "ivadas-predict"
        memory_limit_in_mb = 1024
        invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:ivadas-predict"
        aws_request_id = "request"

        @staticmethod
        def get_remaining_time_in_millis():
            return remaining_ms

    return Context()


def predict(remaining_ms: int) -> tuple[int, dict, float]:
    event = {"resource": "/{proxy+}", "path": "/predict", "httpMethod": "POST", "headers": {"Content-Type": "application/json"},
             "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
             "pathParameters": {"proxy": "predict"}, "stageVariables": None, "isBase64Encoded": False,
             "body": json.dumps({"class_name": "tiles", "image_base64": IMAGE}),
             "requestContext": {"requestId": str(uuid.uuid4()), "stage": "prod", "path": "/predict", "httpMethod": "POST",
                                "resourcePath": "/{proxy+}", "identity": {"sourceIp": "10.0.0.1"}}}
    started = time.monotonic()
    response = predict_app.handler(event, context(remaining_ms))
    return response["statusCode"], json.loads(response["body"]), time.monotonic() - started


def test_a_model_slower_than_the_lambda_gets_a_json_504_before_the_lambda_ends(slow_endpoint):
    slow_endpoint.delay = 9.0
    remaining_s = 6.0
    status, body, _ = predict(int(remaining_s * 1000))
    assert status == 504 and body["error"]["code"] == "endpoint_timeout"
    # the call was given only what leaves the reserve (time to write the 504 and its metrics) after a
    # connection attempt: 6 s - 2.5 s - 2 s, in botocore's whole seconds; the clock of a loaded test
    # machine is not what is asserted
    read_timeouts = [client.meta.config.read_timeout for client in endpoint_client._runtimes.values()]
    assert read_timeouts == [1]
    assert read_timeouts[0] + endpoint_client.CONNECT_TIMEOUT_S + endpoint_client.RESPONSE_RESERVE_S <= remaining_s
    assert body["error"]["message"] == "the patchcore endpoint did not answer within 1 s"
    assert len(slow_endpoint.requests) == 1


def test_a_read_timeout_is_not_retried(slow_endpoint, monkeypatch):
    monkeypatch.setattr(endpoint_client, "ENDPOINT_TIMEOUT_S", 1.0)
    slow_endpoint.delay = 3.0
    status, body, elapsed = predict(29_000)
    assert status == 504 and body["error"]["message"] == "the patchcore endpoint did not answer within 1 s"
    time.sleep(0.3)  # a retry would have reached the server by now
    assert len(slow_endpoint.requests) == 1 and elapsed < 2.5


def test_no_time_left_means_no_call(slow_endpoint):
    status, body, _ = predict(3_000)  # less than the reserve plus a connection attempt
    assert status == 504 and body["error"]["code"] == "endpoint_timeout"
    assert slow_endpoint.requests == []


def test_outside_an_invocation_the_client_makes_one_attempt_with_the_configured_read_timeout(slow_endpoint):
    client = endpoint_client.runtime(endpoint_client.read_budget())
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert client.meta.config.read_timeout == int(endpoint_client.ENDPOINT_TIMEOUT_S)

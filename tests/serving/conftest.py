"""Servers as real processes: an endpoint (gunicorn) on the test bundle, and the whole local stack."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http(method: str, url: str, body=None, headers=None, timeout=60):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(url: str, process: subprocess.Popen, timeout=120, healthy=True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited while starting"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or not healthy:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


def b64(path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def png_bytes(size=(64, 64), colour=(120, 120, 120)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@contextlib.contextmanager
def serving(model_dir: Path, log: Path, workers: int = 2):
    """`python -m inference.serve` on a bundle, as SageMaker starts it; yields its URL."""
    port = free_port()
    env = {**os.environ, "IVADAS_MODEL_DIR": str(model_dir), "SAGEMAKER_BIND_TO_PORT": str(port),
           "SAGEMAKER_BIND_HOST": "127.0.0.1", "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "inference.serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/ping", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def endpoint(patchcore_bundle, tmp_path_factory):
    """The image endpoint on the test bundle."""
    with serving(patchcore_bundle[0], tmp_path_factory.mktemp("endpoint") / "server.log") as url:
        yield url


# ------------------------------------------------------------------ the API Lambda, called in process


class Context:
    """The Lambda context API Gateway's invocation would bring."""

    function_name = "ivadas-predict"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ivadas-predict"
    aws_request_id = "lambda-request"

    @staticmethod
    def get_remaining_time_in_millis():
        return 29000


def api_event(method: str, path: str, body=None, query=None) -> dict:
    """An API Gateway REST proxy event for the API Lambda."""
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    return {"resource": "/{proxy+}", "path": path, "httpMethod": method, "headers": {"Content-Type": "application/json"},
            "multiValueHeaders": {}, "queryStringParameters": query, "multiValueQueryStringParameters": None,
            "pathParameters": {"proxy": path[1:]}, "stageVariables": None, "isBase64Encoded": False, "body": text,
            "requestContext": {"requestId": str(uuid.uuid4()), "stage": "prod", "path": path, "httpMethod": method,
                               "resourcePath": "/{proxy+}", "identity": {"sourceIp": "10.0.0.1"}}}

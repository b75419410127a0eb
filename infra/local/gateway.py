"""The local stack's front doors, doing what AWS services do in the cloud. Two roles, served by
separate processes as they are separate services on AWS (and so an API worker waiting on an
endpoint never waits for a worker of its own pool):

- role `runtime`: `POST /endpoints/{name}/invocations`, the SageMaker runtime API, forwarded to
  the endpoint process serving `name`, with SageMaker's error shapes (ModelError,
  ServiceUnavailable, ValidationError), so boto3's `sagemaker-runtime` client works unchanged.
- role `api`: the API routes, turned into API Gateway REST proxy events and handed to the predict
  Lambda's handler as API Gateway would (10 MB request limit); everything else is the static UI
  from `ui/`, with a generated `config.json` (same-origin API).
"""

from __future__ import annotations

import base64
import http.client
import json
import mimetypes
import os
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parents[2]
API_PREFIXES = ("/predict", "/health", "/models", "/inspections", "/assets", "/monitoring")
#: The model life cycle from the browser: datasets, trainings, approvals, trials, feedback
LIFECYCLE_PREFIXES = ("/datasets", "/trainings", "/versions", "/trials", "/feedback")
API_PREFIXES = API_PREFIXES + LIFECYCLE_PREFIXES
#: Where the local stand-in for S3 presigned POSTs takes uploads (lambda/predict/uploads.py)
LOCAL_UPLOAD_PATH = "/local-s3/upload"
API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
ENDPOINT_TIMEOUT_S = 60


def _json(start_response, status: int, payload: dict, headers=()):
    body = json.dumps(payload).encode()
    start_response(f"{status} {http.client.responses.get(status, 'Error')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers])
    return [body]


class LambdaContext:
    """The parts of the Lambda context object that handlers and Powertools read."""

    function_name = "ivadas-predict-local"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:ivadas-predict-local"

    def __init__(self, deadline_s: float = 29.0):
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + deadline_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def proxy_event(environ, body: bytes) -> dict:
    """The API Gateway REST (v1) proxy event for this request."""
    path, method = environ.get("PATH_INFO", "/"), environ["REQUEST_METHOD"]
    headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode("ascii"), True
    request_id = str(uuid.uuid4())
    return {
        "resource": "/{proxy+}", "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": path.lstrip("/")}, "stageVariables": None,
        "requestContext": {"requestId": request_id, "stage": "local", "path": path, "httpMethod": method,
                           "resourcePath": "/{proxy+}", "identity": {"sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1")},
                           "requestTimeEpoch": int(time.time() * 1000)},
        "body": text if body else None, "isBase64Encoded": is_base64,
    }


class EndpointDirectory:
    """Endpoint name → "host:port" of its server, from a file the local stack rewrites when an
    endpoint starts (re-read when it changes, as endpoints come and go like on SageMaker)."""

    def __init__(self, path: Path | None = None, fixed: dict[str, str] | None = None):
        self.path = path
        self._entries = dict(fixed or {})
        self._stamp = None

    def get(self, name: str) -> str | None:
        if self.path is not None:
            try:
                stamp = self.path.stat().st_mtime_ns
            except OSError:
                stamp = None
            if stamp != self._stamp:
                self._entries = json.loads(self.path.read_text()) if stamp is not None else {}
                self._stamp = stamp
        return self._entries.get(name)


class Gateway:
    def __init__(self, role: str, endpoints: EndpointDirectory | None = None, ui_dir: Path | None = None, handler=None,
                 access=None, capture=None):
        self.role = role
        #: the runtime role's data capture (infra/local/capture.py), as SageMaker's on AWS; None: off
        self.capture = capture
        #: `ivadas up --auth`: sign-in, token and key checks (signin.LocalAccess); None: open on loopback
        self.access = access
        self.endpoints = endpoints or EndpointDirectory()
        self.ui_dir = (ui_dir or ROOT / "ui").resolve()
        self.handler = handler

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if self.role == "runtime":
            if path.startswith("/endpoints/") and path.endswith("/invocations") and environ["REQUEST_METHOD"] == "POST":
                return self.invoke_endpoint(environ, start_response, path[len("/endpoints/"):-len("/invocations")])
            return _sagemaker_error(start_response, 404, "UnknownOperationException", f"no operation at {path}")
        if path == LOCAL_UPLOAD_PATH and environ["REQUEST_METHOD"] == "POST":
            return self.accept_upload(environ, start_response)  # signed like S3's presigned POST: no sign-in
        if path.startswith(API_PREFIXES):
            return self.call_lambda(environ, start_response)
        if self.access is not None and path.startswith("/oauth2/"):
            return self.access.handle(environ, start_response)
        return self.static(environ, start_response, path)

    # ---------------------------------------------------------------------- SageMaker runtime

    def invoke_endpoint(self, environ, start_response, name: str):
        target = self.endpoints.get(name)
        if target is None:
            return _sagemaker_error(start_response, 400, "ValidationError", f"Endpoint {name} of account 000000000000 not found.")
        body = _read(environ)
        headers = {"Content-Type": environ.get("CONTENT_TYPE") or "application/json"}
        if environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"):
            headers["X-Amzn-SageMaker-Custom-Attributes"] = environ["HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"]
        host, port = target.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=ENDPOINT_TIMEOUT_S)
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (ConnectionError, OSError) as exc:
            return _sagemaker_error(start_response, 503, "ServiceUnavailable", f"Endpoint {name} is not available: {exc}")
        finally:
            connection.close()
        if response.status >= 400:  # SageMaker wraps the container's error in a ModelError
            return _sagemaker_error(start_response, 424, "ModelError",
                                    f"Received client error ({response.status}) from primary with message \"{payload.decode(errors='replace')}\".",
                                    OriginalStatusCode=response.status, OriginalMessage=payload.decode(errors="replace"),
                                    LogStreamArn=f"local:/ivadas/endpoints/{name}")
        answer_type = response.getheader("Content-Type", "application/json")
        if self.capture is not None:
            try:
                self.capture.record(name, headers["Content-Type"], body, answer_type, payload,
                                    environ.get("HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID"))
            except OSError as exc:  # as on SageMaker, a capture that cannot be written never fails the request
                print(f"data capture not written: {exc}", file=sys.stderr)
        start_response("200 OK", [("Content-Type", answer_type),
                                  ("Content-Length", str(len(payload))), ("x-Amzn-Invoked-Production-Variant", "AllTraffic")])
        return [payload]

    # ------------------------------------------------------------------------------ the API

    def call_lambda(self, environ, start_response):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > API_GATEWAY_MAX_BODY:
            return _json(start_response, 413, {"message": "Request Too Long"})
        event = proxy_event(environ, _read(environ))
        if self.access is not None:
            from .auth import AuthError

            try:  # what API Gateway's authorizer and usage plan refuse never reaches the Lambda
                self.access.identify(environ, event)
            except AuthError as error:
                return _json(start_response, error.status, {"error": {"code": error.code, "message": error.message},
                                                            "request_id": event["requestContext"]["requestId"]})
        result = self.handler(event, LambdaContext())
        body = result.get("body") or ""
        payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        headers = [(k, v) for k, v in (result.get("headers") or {}).items() if k.lower() != "content-length"]
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers += [(key, v) for v in values if key.lower() != "content-length"]
        status = int(result.get("statusCode", 200))
        start_response(f"{status} {http.client.responses.get(status, 'Error')}", headers + [("Content-Length", str(len(payload)))])
        return [payload]

    # --------------------------------------------------------------------- uploads (S3 POST)

    def accept_upload(self, environ, start_response):
        """What S3 does with a presigned POST: check the form's signed conditions, store the file
        under its key, answer 204; refusals as S3 words them (XML, 400/403)."""
        from email.parser import BytesParser
        from email.policy import HTTP

        import class_datasets as datasets
        import imports
        from object_store import FolderStore
        from uploads import LocalPresigner

        secret, store = os.environ.get("LOCAL_UPLOAD_SECRET"), os.environ.get("DATASET_STORE")
        if not secret or not store:
            return _s3_error(start_response, 403, "AccessDenied", "this stack takes no uploads")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > max(datasets.MAX_ZIP_BYTES, imports.MAX_GRAPH_BYTES) + 1024 * 1024:  # the largest form
            return _s3_error(start_response, 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        kind = environ.get("CONTENT_TYPE", "")
        if not kind.startswith("multipart/form-data"):
            return _s3_error(start_response, 400, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {kind}\r\n\r\n".encode() + _read(environ))
        fields, file = {}, None
        for part in message.iter_parts() if message.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                file = part.get_payload(decode=True) or b""
            elif name:
                fields[name] = part.get_content().strip() if part.get_content_maintype() == "text" else part.get_payload(decode=True).decode()
        if file is None:
            return _s3_error(start_response, 400, "InvalidArgument", "POST requires exactly one file upload per request.")
        key, refusal = LocalPresigner(secret).check(fields, len(file))
        if refusal:
            code = "EntityTooLarge" if "bytes" in refusal else "AccessDenied"
            return _s3_error(start_response, 400 if code == "EntityTooLarge" else 403, code, refusal)
        FolderStore(store).put(key, file)
        start_response("204 No Content", [("Content-Length", "0")])
        return [b""]

    # ------------------------------------------------------------------------------- the UI

    def static(self, environ, start_response, path: str):
        if path == "/config.json" and not (self.ui_dir / "config.json").is_file():
            config = {"apiBaseUrl": "", "environment": "local"}
            if self.access is not None:
                config["auth"] = self.access.ui_config()
            return _json(start_response, 200, config)
        relative = path.lstrip("/") or "index.html"
        target = (self.ui_dir / relative).resolve()
        if self.ui_dir not in target.parents and target != self.ui_dir or not target.is_file():
            return _json(start_response, 404, {"error": {"code": "not_found", "message": f"no such page {path}"}})
        data = target.read_bytes()
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(data))), ("Cache-Control", "no-cache"),
                                  ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY")])
        return [data]


def _s3_error(start_response, status: int, code: str, message: str):
    body = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    start_response(f"{status} {http.client.responses.get(status, 'Error')}",
                   [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def _sagemaker_error(start_response, status: int, error_type: str, message: str, **fields):
    return _json(start_response, status, {"message": message, "Message": message, **fields},
                 headers=[("x-amzn-ErrorType", f"{error_type}:http://internal.amazon.com/coral/com.amazonaws.sagemaker.runtime/")])


def _read(environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length else b""


def load_predict_handler():
    """The predict Lambda's handler, imported from its asset folder exactly as Lambda would."""
    folder = str(ROOT / "lambda" / "predict")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import predict_app

    return predict_app.handler


def create_app() -> Gateway:
    """Gateway from the environment the local stack sets: `IVADAS_GATEWAY_ROLE` (api|runtime),
    `IVADAS_LOCAL_ENDPOINTS_FILE` (a JSON file {name: host:port}) or `IVADAS_LOCAL_ENDPOINTS` (the
    same JSON, fixed) for the runtime role, `IVADAS_UI_DIR` (api), and with `ivadas up --auth`
    `IVADAS_AUTH_FILE` (users and keys) and `IVADAS_AUTH_STATE` (codes and key usage, SQLite)."""
    role = os.environ.get("IVADAS_GATEWAY_ROLE", "api")
    if role == "runtime":
        from .capture import DataCapture

        path = os.environ.get("IVADAS_LOCAL_ENDPOINTS_FILE")
        return Gateway("runtime", endpoints=EndpointDirectory(Path(path) if path else None,
                                                              json.loads(os.environ.get("IVADAS_LOCAL_ENDPOINTS", "{}"))),
                       capture=DataCapture.from_environment())
    access = None
    if os.environ.get("IVADAS_AUTH_FILE"):  # `ivadas up --auth`
        from .signin import LocalAccess

        access = LocalAccess(Path(os.environ["IVADAS_AUTH_FILE"]), Path(os.environ["IVADAS_AUTH_STATE"]))
    return Gateway("api", ui_dir=Path(os.environ.get("IVADAS_UI_DIR", ROOT / "ui")), handler=load_predict_handler(), access=access)

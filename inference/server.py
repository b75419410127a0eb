"""The SageMaker hosting contract: `GET /ping` and `POST /invocations`, as a WSGI application,
for a bundle of any model kind.

Requests:
- `application/json`: `{"class_name", <input>, "threshold"?, "outputs"?}` where the input is the
  modality's (`image_base64` for image kinds, `window` for sensor kinds), or a batch
  `{"instances": [...]}` of at most `MAX_BATCH` such objects, or `{"describe": true}` for the
  bundle's summary (kind, modality, version, classes, thresholds, outputs).
- any other content type the kind accepts (a raw image, a CSV window), with `class_name=...`
  (and optionally `threshold=...`, `outputs=a;b`) in `X-Amzn-SageMaker-Custom-Attributes`.
Errors are `{"error": {"code", "message"}}` with the status of the API contract.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from pathlib import Path

from inference.errors import BadRequest, IvadasError, PayloadTooLarge
from inference.model import ServedModel, load_model

log = logging.getLogger("ivadas.server")

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker real-time payload limit
MAX_BATCH = 8


def model_location() -> Path:
    return Path(os.environ.get("IVADAS_MODEL_DIR", "/opt/ml/model"))


VERSION_FILE = ".ivadas-version"
METRICS_FILE = ".ivadas-metrics.json"


def served_version_label(location: Path) -> str | None:
    """The registry version being served: `IVADAS_MODEL_VERSION`, or a label file the deployer
    wrote next to the model (the local stack does, so a hot swap changes it too)."""
    if os.environ.get("IVADAS_MODEL_VERSION"):
        return os.environ["IVADAS_MODEL_VERSION"]
    label = location / VERSION_FILE
    return label.read_text().strip() if label.is_file() else None


def served_metrics(location: Path) -> dict:
    """Evaluation metrics of the served version, as the deployer passed them (they are computed
    after training, so they are not inside the bundle): `IVADAS_MODEL_METRICS` or a file."""
    if os.environ.get("IVADAS_MODEL_METRICS"):
        return json.loads(os.environ["IVADAS_MODEL_METRICS"])
    path = location / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


class ModelHolder:
    """Loads the bundle once per process; `/ping` is healthy only after that succeeded."""

    def __init__(self, location: Path):
        self.location = location
        self.model: ServedModel | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def get(self) -> ServedModel | None:
        if self.model is None and self.error is None:
            with self._lock:
                if self.model is None and self.error is None:
                    self._load()
        return self.model

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            location = self.location
            if location.is_dir() and (location / "model.tar.gz").is_file() and not (location / "manifest.json").is_file():
                location = location / "model.tar.gz"
            self.model = load_model(location)
            self.model.version = served_version_label(self.location) or self.model.version
            log.info("%s model %s loaded from %s in %.1fs", self.model.kind, self.model.version, location,
                     time.perf_counter() - started)
        except IvadasError as exc:
            self.error = exc.message
            log.error("model cannot be served: %s", exc.message)

    def describe(self) -> dict:
        return {**self.model.describe(), "metrics": served_metrics(self.location) or self.model.manifest.get("metrics", {})}


def parse_custom_attributes(header: str) -> dict:
    """`class_name=tiles,threshold=0.6,outputs=heatmap;regions` → dict (SageMaker passes it verbatim)."""
    attributes = {}
    for part in filter(None, (p.strip() for p in header.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise BadRequest(f"custom attribute {part!r} is not key=value")
        attributes[key.strip()] = value.strip()
    return attributes


class InvocationsApp:
    """WSGI application for one model kind's endpoint."""

    def __init__(self, holder: ModelHolder):
        self.holder = holder

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        try:
            if path == "/ping" and method == "GET":
                return self._ping(start_response)
            if path == "/invocations" and method == "POST":
                return self._respond(start_response, 200, self._invoke(environ))
            return self._respond(start_response, 404, {"error": {"code": "not_found", "message": f"no route {method} {path}"}})
        except IvadasError as exc:
            return self._respond(start_response, exc.status, exc.to_dict())
        except Exception:  # never a stack trace to the caller; the log has it
            log.exception("unexpected error serving %s %s", method, path)
            return self._respond(start_response, 500, {"error": {"code": "internal_error", "message": "the model failed on this request"}})

    def _ping(self, start_response):
        model = self.holder.get()
        if model is None:
            return self._respond(start_response, 503, {"status": "unavailable", "reason": self.holder.error or "loading"})
        return self._respond(start_response, 200, {"status": "healthy", "kind": model.kind, "modality": model.modality})

    def _invoke(self, environ) -> dict:
        body = _read_body(environ)
        model = self.holder.get()
        if model is None:
            raise ModelUnavailable(self.holder.error or "the model is still loading")
        content_type = (environ.get("CONTENT_TYPE") or "application/json").split(";")[0].strip().lower()
        if content_type == "application/json":
            return self._invoke_json(model, body)
        attributes = parse_custom_attributes(environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES", ""))
        return model.predict_body(body, content_type, attributes)

    def _invoke_json(self, model: ServedModel, body: bytes) -> dict:
        try:
            request = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        except ValueError:  # an integer of more digits than Python converts (4,300)
            raise BadRequest("the body holds a number with too many digits to read") from None
        if isinstance(request, dict) and request.get("describe") is True:
            return _finite(self.holder.describe())  # a NaN metric in a manifest is unknown (null), not a failure
        if isinstance(request, dict) and "instances" in request:
            instances = request["instances"]
            if not isinstance(instances, list) or not instances:
                raise BadRequest("instances must be a non-empty list")
            if len(instances) > MAX_BATCH:
                raise PayloadTooLarge(f"a batch holds at most {MAX_BATCH} instances, got {len(instances)}")
            return {"predictions": [_result_or_error(model, instance) for instance in instances]}
        return model.predict(request)

    @staticmethod
    def _respond(start_response, status: int, payload: dict):
        # strict JSON: a NaN or infinity fails here (a logged 500), never reaching a client as `Infinity`
        body = json.dumps(payload, allow_nan=False).encode()
        start_response(f"{status} {_REASONS.get(status, 'Error')}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def _result_or_error(model: ServedModel, instance) -> dict:
    """Batch items fail alone: one bad input does not lose the others' results."""
    try:
        result = model.predict(instance)
        json.dumps(result, allow_nan=False)  # a result that is not strict JSON fails alone too
        return result
    except IvadasError as exc:
        return {**exc.to_dict(), "status": exc.status}
    except ValueError:  # the model's own, or the check's: a result holding NaN or infinity
        log.exception("a batch item failed: the model raised, or its result holds NaN or infinity")
        return {"error": {"code": "internal_error", "message": "the model failed on this item"}, "status": 500}


def _finite(value):
    """`value` with every NaN or infinite float replaced by None (null)."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _read_body(environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest("invalid Content-Length") from None
    if length > MAX_BODY_BYTES:
        _discard(environ["wsgi.input"], min(length, DRAIN_LIMIT))  # so the client can read our answer
        raise PayloadTooLarge(f"the request is {length} bytes; the limit is {MAX_BODY_BYTES} bytes")
    return environ["wsgi.input"].read(length) if length else b""


DRAIN_LIMIT = 16 * 1024 * 1024


def _discard(stream, length: int) -> None:
    while length > 0:
        chunk = stream.read(min(length, 1 << 20))
        if not chunk:
            return
        length -= len(chunk)


class ModelUnavailable(IvadasError):
    status, code = 503, "model_unavailable"


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 413: "Payload Too Large", 415: "Unsupported Media Type",
            422: "Unprocessable Entity", 500: "Internal Server Error", 503: "Service Unavailable"}


def create_app() -> InvocationsApp:
    """Called once in every server worker: each loads the model itself."""
    holder = ModelHolder(model_location())
    holder.get()
    return InvocationsApp(holder)

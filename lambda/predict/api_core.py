"""What every route of the API shares: the logger and metrics, the error type and its JSON shape,
request parsing with pydantic, and the request limits (checked before anything is called)."""

from __future__ import annotations

import base64
import json
import math
import os
from decimal import Decimal

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.shared.json_encoder import Encoder
from pydantic import BaseModel, ValidationError

logger = Logger(service="ivadas-api")
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "IVADAS"), service="ivadas-api")

# Lambda's synchronous payload limit is 6 MB; leave room for the event envelope.
MAX_BODY_BYTES = int(os.environ.get("MAX_BODY_BYTES", str(6 * 1024 * 1024 - 64 * 1024)))
MAX_IMAGE_BYTES = int(os.environ.get("MAX_IMAGE_BYTES", "4400000"))
MAX_BATCH = int(os.environ.get("MAX_BATCH", "8"))


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def strict_json(body) -> str:
    """Every JSON answer of the API: strict JSON, never `NaN` or `Infinity` (which browsers' JSON.parse
    refuses). A non-finite number (only an old stored record can hold one: verdicts with one are
    refused before they are answered or logged) is answered as null, and logged."""
    try:
        return json.dumps(body, separators=(",", ":"), cls=Encoder, allow_nan=False)
    except ValueError:
        logger.warning("a NaN or infinite number in an answer was replaced by null")
        return json.dumps(_finite(body), separators=(",", ":"), cls=Encoder, allow_nan=False)


def _finite(value):
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal) and not value.is_finite():
        return None
    return value


def request_id(event) -> str:
    return event.request_context.request_id or "local"


def error_response(error: ApiError, rid: str) -> Response:
    metrics.add_metric(name=f"Errors_{error.code}", unit=MetricUnit.Count, value=1)
    body = {"error": {"code": error.code, "message": error.message}, "request_id": rid}
    return Response(error.status, content_types.APPLICATION_JSON, json.dumps(body))


def json_body(event) -> dict:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    body = event.body
    if not body:
        raise ApiError(400, "bad_request", "the request body is empty; send JSON")
    if event.is_base64_encoded:
        body = base64.b64decode(body)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_request", f"the body is not valid JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise ApiError(400, "bad_request", "the body holds a number with too many digits to read") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return data


def validated(model: type[BaseModel], data: dict):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = place(first["loc"])
        # a check of the whole request (a model validator) says what is wrong in its own words:
        # without pydantic's "Value error, " and without a place ("body") that tells the user nothing
        own_words = first["type"] == "value_error" and "error" in first.get("ctx", {})
        message = str(first["ctx"]["error"]) if own_words else first["msg"]
        message = f"{where}: {message}" if where else message
        if first["type"] == "too_long" and first["loc"][:1] in (("window",), ("items",)):
            raise ApiError(413, "payload_too_large", message) from None
        raise ApiError(400, "bad_request", message) from None


def shown(value) -> str:
    """A value the request sent, as a message quotes it: JSON's null, true and false, other values as
    Python writes them ('abc', 2.5), cut short when long."""
    text = "null" if value is None else "true" if value is True else "false" if value is False else repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def place(loc: tuple) -> str:
    """Where in the request an error is, in the user's words: "window row 5, column 0",
    "timestamp of row 3", "item 1, window row 0, column 2"; other fields as pydantic names them
    ("settings.image_size"). Empty for the request as a whole."""
    words, rest = [], list(loc)
    while rest:
        part = rest.pop(0)
        if part == "items" and rest and isinstance(rest[0], int):
            words.append(f"item {rest.pop(0)}")
        elif part == "window" and len(rest) >= 2 and isinstance(rest[0], int) and isinstance(rest[1], int):
            words.append(f"window row {rest.pop(0)}, column {rest.pop(0)}")
        elif part == "window" and rest and isinstance(rest[0], int):
            words.append(f"window row {rest.pop(0)}")
        elif part == "timestamps" and rest and isinstance(rest[0], int):
            words.append(f"timestamp of row {rest.pop(0)}")
        else:
            words.append(".".join(str(p) for p in [part, *rest]))
            break
    return ", ".join(words)


def count_verdict(class_name: str, kind: str, is_anomaly: bool) -> None:
    """`Inspections` and `Anomalies` per class (or asset) and model kind: the anomaly-rate panels and
    alarms read them, whether a verdict came through the API or the sensor feed."""
    for name, value in (("Inspections", 1), ("Anomalies", int(is_anomaly))):
        with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=metrics.namespace) as metric:
            metric.add_dimension(name="class_name", value=class_name)
            metric.add_dimension(name="model", value=kind)

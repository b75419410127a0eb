"""The model kinds this deployment serves and the call to their real-time endpoints.

Kinds are configuration, not code: `ENDPOINT_NAMES` (kind → endpoint), `MODEL_MODALITIES`
(kind → image | sensors) and `DEFAULT_MODELS` (modality → the kind a request without `model`
gets). Endpoint failures become the API's 502/503/504/429; the model's own 4xx pass through.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from api_core import ApiError, logger

ENDPOINT_TIMEOUT_S = float(os.environ.get("ENDPOINT_TIMEOUT_S", "25"))  # inside API Gateway's 29 s
CONNECT_TIMEOUT_S = 2.0
#: Kept back from the Lambda's remaining time for what follows a slow model: the 504 (or the answer),
#: the inspection record and the metrics. Without it the Lambda dies mid-call and nothing answers.
RESPONSE_RESERVE_S = float(os.environ.get("RESPONSE_RESERVE_S", "2.5"))
INPUT_FIELDS = {"image": "image_base64", "sensors": "window"}
#: Put before the request id in every call's InferenceId, which data capture records: the monitoring
#: job leaves captured requests so marked to the inspection log (pipelines/monitoring/capture.py).
API_INFERENCE_PREFIX = "ivadas-api:"
INFERENCE_ID_LENGTH = 64  # InvokeEndpoint's limit
#: The error code of a kind whose endpoint does not exist (nothing approved yet): not an outage.
NOT_DEPLOYED = "model_not_deployed"


def endpoint_names() -> dict[str, str]:
    return json.loads(os.environ.get("ENDPOINT_NAMES", "{}")) or {"patchcore": "ivadas-patchcore", "softpatch": "ivadas-softpatch"}


def model_kinds() -> tuple[str, ...]:
    return tuple(endpoint_names())


def modality_of(kind: str) -> str:
    return json.loads(os.environ.get("MODEL_MODALITIES", "{}")).get(kind, "image")


def default_models() -> dict[str, str]:
    """The kind that answers a request naming none, per modality of what it sends."""
    configured = json.loads(os.environ.get("DEFAULT_MODELS", "{}"))
    return configured or {"image": os.environ.get("DEFAULT_MODEL", "patchcore")}


def check_model_name(data: dict) -> None:
    """An unknown `model` is a 404, before the rest of the body is judged."""
    if isinstance(data.get("model"), str) and data["model"] and data["model"] not in model_kinds():
        raise ApiError(404, "unknown_model", f"unknown model {data['model']!r}; choose one of {list(model_kinds())}")


def resolve_kind(requested: str | None, modality: str) -> str:
    """The kind to ask: the requested one (which must take this input), else the modality's default."""
    kind = requested or default_models().get(modality)
    if not kind:
        raise ApiError(400, "bad_request", f"no default model for {modality} inputs; name one with 'model'")
    if kind not in model_kinds():
        raise ApiError(404, "unknown_model", f"unknown model {kind!r}; choose one of {list(model_kinds())}")
    if modality_of(kind) != modality:
        wanted = INPUT_FIELDS[modality_of(kind)]
        raise ApiError(415, "unsupported_media_type", f"the {kind} model takes {wanted}, not {INPUT_FIELDS[modality]}")
    return kind


#: A client set from outside (the tests' doubles); None: one client per read timeout, made on demand.
_runtime = None
_runtimes: dict[tuple, object] = {}
#: time.monotonic() at which this invocation's Lambda is stopped (None outside a Lambda invocation)
_deadline: float | None = None


def start_budget(context) -> None:
    """Note when this invocation ends (the handler calls it first), so endpoint calls fit inside it."""
    global _deadline
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    _deadline = time.monotonic() + remaining() / 1000 if callable(remaining) else None


def read_budget() -> float:
    """Seconds an endpoint call may wait for its answer now: the configured limit, or less when the
    Lambda's remaining time minus the reserve and a connection attempt is shorter."""
    if _deadline is None:
        return ENDPOINT_TIMEOUT_S
    return min(ENDPOINT_TIMEOUT_S, _deadline - time.monotonic() - RESPONSE_RESERVE_S - CONNECT_TIMEOUT_S)


def runtime(read_timeout: float = ENDPOINT_TIMEOUT_S):
    """The SageMaker runtime client for a read timeout (whole seconds). One attempt only: botocore
    retries a read timeout by default, which doubles the wait past the Lambda's own timeout."""
    if _runtime is not None:
        return _runtime
    seconds = max(1, int(read_timeout))
    key = (seconds, os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", ""), os.environ.get("AWS_DEFAULT_REGION", ""))
    if key not in _runtimes:
        config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=seconds, retries={"total_max_attempts": 1})
        _runtimes[key] = boto3.client("sagemaker-runtime", config=config)
    return _runtimes[key]


def inference_id(request_id: str | None) -> str:
    """The InferenceId of an endpoint call made for `request_id` (a fresh id for calls made for none)."""
    return (API_INFERENCE_PREFIX + (request_id or uuid.uuid4().hex))[:INFERENCE_ID_LENGTH]


def invoke(kind: str, payload: dict, record_errors: bool = True, request_id: str | None = None,
           strict: bool = True) -> dict:
    """The endpoint's answer to `payload`. `strict` (verdicts): a NaN or infinite number in it is a 502,
    never answered, logged or kept; otherwise (a description) such a number is read as null, as the
    endpoint itself now writes it (older endpoint images wrote NaN there)."""
    endpoint = endpoint_names().get(kind)
    if not endpoint:
        raise ApiError(503, "model_unavailable", f"no endpoint is configured for {kind}")
    budget = read_budget()
    if budget < 1:  # no time left to wait for any answer
        raise ApiError(504, "endpoint_timeout", f"no time was left to ask the {kind} endpoint within this request")
    try:
        response = runtime(budget).invoke_endpoint(EndpointName=endpoint, ContentType="application/json",
                                                   Accept="application/json", Body=json.dumps(payload),
                                                   InferenceId=inference_id(request_id))
        return _parsed(response["Body"].read(), strict)
    except NotStrictJson:  # never answered, logged or kept: a verdict with an infinite score is no verdict
        error = ApiError(502, "model_error", f"the {kind} model answered with a NaN or infinite number")
    except ValueError:  # not JSON at all (an error page, an empty body), or a number of thousands of digits
        error = ApiError(502, "model_error", f"the {kind} model's answer is not JSON")
    except ClientError as exc:
        error = endpoint_error(kind, endpoint, exc)
    except (ReadTimeoutError, ConnectTimeoutError):
        error = ApiError(504, "endpoint_timeout", f"the {kind} endpoint did not answer within {int(budget)} s")
    except EndpointConnectionError:
        error = ApiError(503, "model_unavailable", f"the {kind} endpoint cannot be reached")
    except BotoCoreError as exc:
        error = ApiError(502, "endpoint_error", f"calling the {kind} endpoint failed: {exc}")
    if record_errors:
        logger.warning("endpoint call failed", extra={"kind": kind, "endpoint": endpoint, "status": error.status, "code": error.code})
    raise error


class NotStrictJson(ValueError):
    pass


def _parsed(body: bytes, strict: bool):
    """`body` as JSON; its NaN, Infinity and numbers beyond a float (1e999) refused (`strict`) or read as None."""

    def non_finite(text: str):
        if strict:
            raise NotStrictJson(f"{text} is not a finite JSON number")
        return None

    def number(text: str):
        value = float(text)
        return value if math.isfinite(value) else non_finite(text)

    return json.loads(body, parse_constant=non_finite, parse_float=number)


def endpoint_error(kind: str, endpoint: str, exc: ClientError) -> ApiError:
    """Map SageMaker runtime errors: the model's own 4xx pass through, the rest are 502/503/504/429."""
    info = exc.response.get("Error", {})
    code = info.get("Code", "")
    if code == "ModelError":
        original_status = int(exc.response.get("OriginalStatusCode", 0) or 0)
        try:
            original = json.loads(exc.response.get("OriginalMessage") or "{}").get("error", {})
        except (json.JSONDecodeError, AttributeError):
            original = {}
        if not isinstance(original, dict):  # {"error": "text"}: no code to pass on
            original = {}
        if 400 <= original_status < 500 and original.get("code"):
            return ApiError(original_status, original["code"], original.get("message", "rejected by the model"))
        if original_status == 503:
            return ApiError(503, "model_unavailable", f"the {kind} model is not ready")
        return ApiError(502, "model_error", f"the {kind} model failed on this request")
    if code in ("ThrottlingException", "TooManyRequestsException"):
        return ApiError(429, "throttled", "too many requests; retry shortly")
    if code == "ValidationError" and "not found" in info.get("Message", ""):
        return ApiError(503, NOT_DEPLOYED, f"no {kind} model is deployed yet; approve a {kind} version to serve it")
    if code in ("ModelNotReadyException", "ServiceUnavailable", "InternalDependencyException"):
        return ApiError(503, "model_unavailable", f"the {kind} model is not available ({info.get('Message') or code})")
    if code in ("InternalFailure", "InternalServerError"):
        return ApiError(502, "endpoint_error", f"the {kind} endpoint failed ({code})")
    return ApiError(502, "endpoint_error", f"the {kind} endpoint returned {code}: {info.get('Message', '')}")


def describe_all() -> dict[str, dict | ApiError]:
    """Every kind's endpoint described, concurrently (a kind without an endpoint answers quickly)."""

    def describe(kind):
        try:
            return invoke(kind, {"describe": True}, record_errors=False, strict=False)
        except ApiError as exc:
            return exc

    kinds = model_kinds()
    with ThreadPoolExecutor(max_workers=min(8, len(kinds) or 1)) as pool:
        return dict(zip(kinds, pool.map(describe, kinds)))

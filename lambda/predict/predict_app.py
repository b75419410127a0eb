"""The IVADAS API behind API Gateway: POST /predict, POST /predict/batch, GET /health, /models, /inspections.

It validates and limits requests before calling anything, invokes the real-time endpoint of the
requested model kind through `sagemaker-runtime`, maps endpoint failures to 502/503/504, records
every inspection and emits CloudWatch metrics (embedded metric format). The same code runs on
AWS and in the local stack, where boto3 is pointed at a SageMaker-runtime-compatible route.

Model kinds are configuration, not code: `ENDPOINT_NAMES` (kind → endpoint), `MODEL_MODALITIES`
(kind → image | sensors) and `DEFAULT_MODELS` (modality → the kind a request without `model` gets).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from pydantic import BaseModel, ValidationError

import inspection_log
from schemas import BatchRequest, PredictRequest, PredictResponse

logger = Logger(service="ivadas-api")
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "IVADAS"), service="ivadas-api")
app = APIGatewayRestResolver()

# Lambda's synchronous payload limit is 6 MB; leave room for the event envelope.
MAX_BODY_BYTES = int(os.environ.get("MAX_BODY_BYTES", str(6 * 1024 * 1024 - 64 * 1024)))
MAX_IMAGE_BYTES = int(os.environ.get("MAX_IMAGE_BYTES", "4400000"))
MAX_BATCH = int(os.environ.get("MAX_BATCH", "8"))
ENDPOINT_TIMEOUT_S = float(os.environ.get("ENDPOINT_TIMEOUT_S", "25"))  # inside API Gateway's 29 s


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


INPUT_FIELDS = {"image": "image_base64", "sensors": "window"}
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


_runtime = None
_log = None


def runtime():
    global _runtime
    if _runtime is None:
        config = Config(connect_timeout=3, read_timeout=ENDPOINT_TIMEOUT_S, retries={"max_attempts": 2, "mode": "standard"})
        _runtime = boto3.client("sagemaker-runtime", config=config)
    return _runtime


def inspections():
    global _log
    if _log is None:
        _log = inspection_log.from_environment()
    return _log


# ------------------------------------------------------------------------------------ routes


@app.post("/predict")
def predict():
    request = parse(PredictRequest)
    kind = resolve_kind(request.model, request.modality)
    image = check_image(request.image_base64) if request.image_base64 is not None else None
    started = time.perf_counter()
    result = invoke(kind, request.model_dump(exclude={"model"}, exclude_none=True))
    elapsed_ms = (time.perf_counter() - started) * 1000
    response = finish(result, elapsed_ms, image)
    return response


@app.post("/predict/batch")
def predict_batch():
    request = parse(BatchRequest)
    if len(request.items) > MAX_BATCH:
        raise ApiError(413, "payload_too_large", f"a batch holds at most {MAX_BATCH} images, got {len(request.items)}")
    kind = resolve_kind(request.model, request.modality)
    images = [check_image(item.image_base64) if item.image_base64 is not None else None for item in request.items]
    shared = request.model_dump(include={"threshold", "outputs"}, exclude_none=True)
    started = time.perf_counter()
    result = invoke(kind, {"instances": [{**item.model_dump(exclude_none=True), **shared} for item in request.items]})
    elapsed_ms = (time.perf_counter() - started) * 1000
    predictions = [finish(p, elapsed_ms, image) if "error" not in p else p for p, image in zip(result["predictions"], images)]
    return {"predictions": predictions, "request_id": request_id()}


def describe_all() -> dict[str, dict | ApiError]:
    """Every kind's endpoint described, concurrently (a kind without an endpoint answers quickly)."""

    def describe(kind):
        try:
            return invoke(kind, {"describe": True}, record_errors=False)
        except ApiError as exc:
            return exc

    kinds = model_kinds()
    with ThreadPoolExecutor(max_workers=min(8, len(kinds) or 1)) as pool:
        return dict(zip(kinds, pool.map(describe, kinds)))


@app.get("/health")
def health():
    models = {}
    for kind, described in describe_all().items():
        if isinstance(described, ApiError):
            models[kind] = {"available": False, "deployed": described.code != NOT_DEPLOYED, "reason": described.message}
        else:
            models[kind] = {"available": True, "deployed": True, "version": described["version"]}
    served = [kind for kind, m in models.items() if m["available"]]
    # a kind never deployed is not an outage, unless requests without `model` are sent to it
    expected = set(default_models().values()) & set(models)
    failing = [kind for kind, m in models.items() if not m["available"] and (m["deployed"] or kind in expected)]
    status = "ok" if served and not failing else ("degraded" if served else "unavailable")
    return Response(200 if served else 503, content_types.APPLICATION_JSON, json.dumps({"status": status, "models": models}))


@app.get("/models")
def models():
    listing = []
    defaults = default_models()
    for kind, described in describe_all().items():
        modality = modality_of(kind)
        if isinstance(described, ApiError):
            listing.append({"kind": kind, "modality": modality, "available": False,
                            "deployed": described.code != NOT_DEPLOYED, "reason": described.message})
            continue
        entry = {"kind": kind, "modality": modality, "available": True, "default": defaults.get(modality) == kind, **described}
        if str((described.get("backbone") or {}).get("weights", "")).startswith("random"):
            entry["warning"] = ("this model's backbone has RANDOM weights (no ImageNet weights could be had when it was "
                                "trained): fine for the synthetic demo, near chance on real images")
        listing.append(entry)
    return {"models": listing, "default": defaults.get("image"), "defaults": defaults}


@app.get("/inspections")
def recent_inspections():
    params = app.current_event.query_string_parameters or {}
    verdict = params.get("verdict")
    if verdict not in (None, "", "anomaly", "normal"):
        raise ApiError(400, "bad_request", "verdict must be 'anomaly' or 'normal'")
    try:
        limit = min(max(int(params.get("limit", "50")), 1), 200)
    except ValueError:
        raise ApiError(400, "bad_request", "limit must be an integer") from None
    records = inspections().recent(params.get("class_name") or None, verdict or None, limit)
    return {"inspections": records}


# ---------------------------------------------------------------------------------- helpers


def parse(model: type[BaseModel]):
    body = app.current_event.body
    if not body:
        raise ApiError(400, "bad_request", "the request body is empty; send JSON")
    if app.current_event.is_base64_encoded:
        body = base64.b64decode(body)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_request", f"the body is not valid JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    if isinstance(data.get("model"), str) and data["model"] and data["model"] not in model_kinds():
        raise ApiError(404, "unknown_model", f"unknown model {data['model']!r}; choose one of {list(model_kinds())}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, "bad_request", f"{where}: {first['msg']}") from None


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


def check_image(image_base64: str) -> bytes:
    """Decode once here so that junk never reaches an endpoint (and so the image can be logged)."""
    text = image_base64.split(",", 1)[1] if image_base64.startswith("data:") and "," in image_base64 else image_base64
    try:
        image = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_request", "image_base64 is not valid base64") from None
    if not image:
        raise ApiError(400, "bad_request", "image_base64 decodes to nothing")
    if len(image) > MAX_IMAGE_BYTES:
        raise ApiError(413, "payload_too_large", f"the image is {len(image)} bytes; the limit is {MAX_IMAGE_BYTES} bytes")
    return image


def invoke(kind: str, payload: dict, record_errors: bool = True) -> dict:
    endpoint = endpoint_names().get(kind)
    if not endpoint:
        raise ApiError(503, "model_unavailable", f"no endpoint is configured for {kind}")
    try:
        response = runtime().invoke_endpoint(EndpointName=endpoint, ContentType="application/json",
                                             Accept="application/json", Body=json.dumps(payload))
        return json.loads(response["Body"].read())
    except ClientError as exc:
        error = endpoint_error(kind, endpoint, exc)
    except (ReadTimeoutError, ConnectTimeoutError):
        error = ApiError(504, "endpoint_timeout", f"the {kind} endpoint did not answer within {ENDPOINT_TIMEOUT_S:.0f} s")
    except EndpointConnectionError:
        error = ApiError(503, "model_unavailable", f"the {kind} endpoint cannot be reached")
    except BotoCoreError as exc:
        error = ApiError(502, "endpoint_error", f"calling the {kind} endpoint failed: {exc}")
    if record_errors:
        logger.warning("endpoint call failed", extra={"kind": kind, "endpoint": endpoint, "status": error.status, "code": error.code})
    raise error


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


def request_id() -> str:
    return app.current_event.request_context.request_id or "local"


def finish(result: dict, elapsed_ms: float, image: bytes) -> dict:
    result = {**result, "request_id": request_id()}
    result["timing_ms"] = {**result.get("timing_ms", {}), "endpoint_call": round(elapsed_ms, 2)}
    response = PredictResponse.model_validate(result).model_dump(exclude_none=True)
    response["raw_threshold"] = result.get("raw_threshold")
    dimensions = {"class_name": result["class_name"], "model": result["model"]["kind"]}
    metrics.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    _per_class_metric(dimensions, result["is_anomaly"])
    try:
        inspections().record(inspection_log.inspection_record(result, result["request_id"]), image)
    except Exception:  # the verdict matters more than its log entry; the failure is logged and counted
        logger.exception("inspection could not be recorded")
        metrics.add_metric(name="InspectionLogErrors", unit=MetricUnit.Count, value=1)
    return response


def _per_class_metric(dimensions: dict, is_anomaly: bool) -> None:
    from aws_lambda_powertools.metrics import single_metric

    with single_metric(name="Inspections", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)
    with single_metric(name="Anomalies", unit=MetricUnit.Count, value=int(is_anomaly), namespace=metrics.namespace) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)


def error_response(error: ApiError, rid: str | None = None) -> Response:
    metrics.add_metric(name=f"Errors_{error.code}", unit=MetricUnit.Count, value=1)
    body = {"error": {"code": error.code, "message": error.message}, "request_id": rid or request_id()}
    return Response(error.status, content_types.APPLICATION_JSON, json.dumps(body))


@app.exception_handler(ApiError)
def handle_api_error(error: ApiError):
    return error_response(error)


@app.exception_handler(Exception)
def handle_unexpected(error: Exception):
    logger.exception("unexpected error")
    return error_response(ApiError(500, "internal_error", "the request could not be completed"))


@app.not_found
def handle_not_found(_):
    return error_response(ApiError(404, "not_found", f"no route {app.current_event.http_method} {app.current_event.path}"))


def _too_large(event: dict) -> bool:
    return len(event.get("body") or "") > MAX_BODY_BYTES


_origin_secret = None


def origin_allowed(event: dict) -> bool:
    """On AWS only CloudFront (behind the WAF) knows the origin secret; the API's own URL is refused.
    Without `ORIGIN_VERIFY_SECRET_ARN` (the local stack) every caller is allowed."""
    global _origin_secret
    arn = os.environ.get("ORIGIN_VERIFY_SECRET_ARN")
    if not arn:
        return True
    if _origin_secret is None:
        from aws_lambda_powertools.utilities.parameters import get_secret

        _origin_secret = get_secret(arn, max_age=300)
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    import hmac

    return hmac.compare_digest(headers.get("x-origin-verify", ""), _origin_secret)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    started = time.perf_counter()
    rid = (event.get("requestContext") or {}).get("requestId", "local")
    refusal = None
    if not origin_allowed(event):
        refusal = ApiError(403, "forbidden", "call IVADAS through its public URL")
    elif _too_large(event):  # refused before anything is parsed or called
        refusal = ApiError(413, "payload_too_large", f"the request exceeds {MAX_BODY_BYTES} bytes")
    if refusal:
        response = error_response(refusal, rid)
        result = {"statusCode": response.status_code, "headers": {"Content-Type": "application/json"}, "body": response.body}
    else:
        result = app.resolve(event, context)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
    return result

"""POST /predict and POST /predict/batch: one image or sensor window (or a few) → the kind's endpoint
→ the verdict, recorded in the inspection log and counted in CloudWatch metrics."""

from __future__ import annotations

import base64
import binascii
import time

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

import inspection_log
from api_core import MAX_BATCH, MAX_IMAGE_BYTES, ApiError, count_verdict, json_body, logger, metrics, request_id, validated
from endpoint_client import check_model_name, invoke, resolve_kind
from schemas import BatchRequest, PredictRequest, PredictResponse

router = APIGatewayRouter()
_log = None


def inspections():
    global _log
    if _log is None:
        _log = inspection_log.from_environment()
    return _log


@router.post("/predict")
def predict():
    data = json_body(router.current_event)
    check_model_name(data)
    request = validated(PredictRequest, data)
    kind = resolve_kind(request.model, request.modality)
    image = check_image(request.image_base64) if request.image_base64 is not None else None
    started = time.perf_counter()
    result = invoke(kind, request.model_dump(exclude={"model"}, exclude_none=True), request_id=request_id(router.current_event))
    return finish(result, (time.perf_counter() - started) * 1000, image)


@router.post("/predict/batch")
def predict_batch():
    data = json_body(router.current_event)
    check_model_name(data)
    request = validated(BatchRequest, data)
    if len(request.items) > MAX_BATCH:
        raise ApiError(413, "payload_too_large", f"a batch holds at most {MAX_BATCH} items, got {len(request.items)}")
    kind = resolve_kind(request.model, request.modality)
    images = [check_image(item.image_base64) if item.image_base64 is not None else None for item in request.items]
    shared = request.model_dump(include={"threshold", "outputs"}, exclude_none=True)
    started = time.perf_counter()
    result = invoke(kind, {"instances": [{**item.model_dump(exclude_none=True), **shared} for item in request.items]},
                    request_id=request_id(router.current_event))
    elapsed_ms = (time.perf_counter() - started) * 1000
    predictions = [finish(p, elapsed_ms, image) if "error" not in p else p for p, image in zip(result["predictions"], images)]
    return {"predictions": predictions, "request_id": request_id(router.current_event)}


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


def finish(result: dict, elapsed_ms: float, image: bytes | None) -> dict:
    result = {**result, "request_id": request_id(router.current_event)}
    result["timing_ms"] = {**result.get("timing_ms", {}), "endpoint_call": round(elapsed_ms, 2)}
    response = PredictResponse.model_validate(result).model_dump(exclude_none=True)
    response["raw_threshold"] = result.get("raw_threshold")
    metrics.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    count_verdict(result["class_name"], result["model"]["kind"], result["is_anomaly"])
    try:
        inspections().record(inspection_log.inspection_record(result, result["request_id"]), image)
    except Exception:  # the verdict matters more than its log entry; the failure is logged and counted
        logger.exception("inspection could not be recorded")
        metrics.add_metric(name="InspectionLogErrors", unit=MetricUnit.Count, value=1)
    return response

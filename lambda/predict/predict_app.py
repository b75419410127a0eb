"""The IVADAS API behind API Gateway, one Lambda for every route (route groups in `routes_*.py`):
POST /predict, POST /predict/batch, GET /health, /models, /inspections, and the sensor feed's results
(GET /assets, /assets/{asset}/series, /assets/{asset}/events).

It validates and limits requests before calling anything, invokes the real-time endpoint of the
requested model kind through `sagemaker-runtime` (`endpoint_client.py`), maps endpoint failures to
502/503/504, records every inspection and emits CloudWatch metrics (embedded metric format). The
same code runs on AWS and in the local stack, where boto3 is pointed at a SageMaker-runtime-
compatible route.
"""

from __future__ import annotations

import time

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

import access
import endpoint_client
import origin_secret
import routes_datasets
import routes_imports
import routes_inspections
import routes_models
import routes_monitoring
import routes_predict
import routes_sensors
import routes_trainings
from api_core import MAX_BODY_BYTES, ApiError, error_response, logger, metrics, request_id, strict_json

# the station API serves SigV4 callers under /iam (API Gateway sets one authorization type per method)
app = APIGatewayRestResolver(strip_prefixes=[access.IAM_PREFIX], serializer=strict_json)
for routes in (routes_predict, routes_models, routes_inspections, routes_sensors, routes_datasets, routes_trainings,
               routes_monitoring):
    app.include_router(routes.router)
app.include_router(routes_imports.router)  # bring-your-own detectors: POST /models/import


@app.exception_handler(ApiError)
def handle_api_error(error: ApiError):
    return error_response(error, request_id(app.current_event))


@app.exception_handler(Exception)
def handle_unexpected(error: Exception):
    logger.exception("unexpected error")
    return error_response(ApiError(500, "internal_error", "the request could not be completed"), request_id(app.current_event))


@app.not_found
def handle_not_found(_):
    event = app.current_event
    return error_response(ApiError(404, "not_found", f"no route {event.http_method} {event.path}"), request_id(event))


def _too_large(event: dict) -> bool:
    return len(event.get("body") or "") > MAX_BODY_BYTES


def origin_allowed(event: dict) -> bool:
    """On AWS only CloudFront (behind the WAF) knows the rotating origin secret; the API's own URL is
    refused (origin_secret.py). The local stack has no secret: every caller is allowed."""
    return origin_secret.request_allowed(event)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    started = time.perf_counter()
    endpoint_client.start_budget(context)  # endpoint calls must end before this invocation does
    rid = (event.get("requestContext") or {}).get("requestId", "local")
    refusal = None
    if not origin_allowed(event):
        refusal = ApiError(403, "forbidden", "call IVADAS through its public URL")
    elif _too_large(event):  # refused before anything is parsed or called
        refusal = ApiError(413, "payload_too_large", f"the request exceeds {MAX_BODY_BYTES} bytes")
    else:
        try:  # who may call which route (access.py): decided before any route runs, so a refusal records nothing
            access.authorize(event)
        except ApiError as error:
            refusal = error
    if refusal:
        response = error_response(refusal, rid)
        result = {"statusCode": response.status_code, "headers": {"Content-Type": "application/json"}, "body": response.body}
    else:
        result = app.resolve(event, context)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
    return result

"""GET /inspections: the inspection history, newest first, filtered by class and verdict."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from api_core import ApiError
from routes_predict import inspections

router = APIGatewayRouter()


@router.get("/inspections")
def recent_inspections():
    params = router.current_event.query_string_parameters or {}
    verdict = params.get("verdict")
    if verdict not in (None, "", "anomaly", "normal"):
        raise ApiError(400, "bad_request", "verdict must be 'anomaly' or 'normal'")
    try:
        limit = min(max(int(params.get("limit", "50")), 1), 200)
    except ValueError:
        raise ApiError(400, "bad_request", "limit must be an integer") from None
    return {"inspections": inspections().recent(params.get("class_name") or None, verdict or None, limit)}

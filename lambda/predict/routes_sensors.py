"""GET /assets, /assets/{asset}/series and /assets/{asset}/events: what the sensor feed found, for
the sensors page (a chart of the readings with the score and the events, and the event list)."""

from __future__ import annotations

import json
import re

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

import object_store
from api_core import ApiError

router = APIGatewayRouter()
ASSET_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_SERIES_ROWS = 20_000


def store():
    found = object_store.from_environment()
    if found is None:
        raise ApiError(503, "sensors_unavailable", "no sensor store is configured for this deployment")
    return found


def check_asset(asset: str) -> str:
    if not ASSET_PATTERN.match(asset or ""):
        raise ApiError(400, "bad_request", f"{asset!r} is not an asset name")
    return asset


def results(asset: str) -> list[str]:
    return [key for key in store().list(f"sensors/{asset}/results/") if key.endswith(".json")]


@router.get("/assets")
def assets():
    listing = []
    for asset in store().folders("sensors"):
        keys = results(asset)
        entry = {"asset": asset, "results": len(keys), "waiting_files": len(store().list(f"sensors/{asset}/incoming/")),
                 "failed_files": len([k for k in store().list(f"sensors/{asset}/failed/") if not k.endswith(".error.json")])}
        if keys:
            last = json.loads(store().get(keys[-1]))
            entry.update(last_reading=last["timestamps"][-1] if last["timestamps"] else None, model=last["model"],
                         last_score=next((s for s in reversed(last["scores"]) if s is not None), None),
                         ongoing_event=bool(last["events"] and last["events"][-1].get("ongoing")))
        listing.append(entry)
    return {"assets": listing}


@router.get("/assets/<asset>/series")
def series(asset: str):
    check_asset(asset)
    params = router.current_event.query_string_parameters or {}
    try:
        limit = min(max(int(params.get("limit", "5000")), 1), MAX_SERIES_ROWS)
    except ValueError:
        raise ApiError(400, "bad_request", "limit must be an integer") from None
    keys = results(asset)
    if not keys:
        raise ApiError(404, "unknown_asset", f"nothing has been scored for asset {asset!r} yet")
    parts = []
    for key in reversed(keys):  # newest first, until `limit` rows are gathered
        parts.insert(0, json.loads(store().get(key)))
        if sum(len(p["timestamps"]) for p in parts) >= limit:
            break
    combined = {"asset": asset, "sensors": parts[-1]["sensors"], "model": parts[-1]["model"], "threshold": parts[-1]["threshold"],
                "timestamps": [], "values": [], "scores": [], "events": merged_events(parts)}
    for part in parts:
        if part["sensors"] != combined["sensors"]:
            continue  # the sensors changed (a new model): the chart shows the current ones
        for field in ("timestamps", "values", "scores"):
            combined[field] += part[field]
    for field in ("timestamps", "values", "scores"):
        combined[field] = combined[field][-limit:]
    return combined


@router.get("/assets/<asset>/events")
def events(asset: str):
    check_asset(asset)
    return {"asset": asset, "events": list(reversed(merged_events([json.loads(store().get(k)) for k in results(asset)])))}


def merged_events(parts: list[dict]) -> list[dict]:
    """Events of consecutive files, an event that runs on into the next file counted once."""
    merged: list[dict] = []
    for part in parts:
        for event in part["events"]:
            last = merged[-1] if merged else None
            if last and last.get("ongoing") and event.get("continues"):
                # the last file ended above the threshold and this one starts so: one excursion
                if event["end_s"] > last["end_s"]:
                    last.update(end=event["end"], end_s=event["end_s"], ongoing=event.get("ongoing", False))
                last["peak_score"] = max(last["peak_score"], event["peak_score"])
                last["duration_s"] = round(last["end_s"] - last["start_s"], 3)
                continue
            merged.append(dict(event))
    return merged

"""GET /health and GET /models: which kinds are deployed, which version each serves, and how good it is."""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from api_core import ApiError
from endpoint_client import NOT_DEPLOYED, default_models, describe_all, modality_of

router = APIGatewayRouter()


@router.get("/health")
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


@router.get("/models")
def models():
    listing = []
    defaults = default_models()
    for kind, described in describe_all().items():
        modality = modality_of(kind)
        if isinstance(described, ApiError):
            listing.append({"kind": kind, "modality": modality, "available": False,
                            "deployed": described.code != NOT_DEPLOYED, "reason": described.message})
            continue
        entry = {"kind": kind, "modality": modality, "available": True, "deployed": True,
                 "default": defaults.get(modality) == kind, **described}
        if str((described.get("backbone") or {}).get("weights", "")).startswith("random"):
            entry["warning"] = ("this model's backbone has RANDOM weights (no ImageNet weights could be had when it was "
                                "trained): fine for the synthetic demo, near chance on real images")
        listing.append(entry)
    return {"models": listing, "default": defaults.get("image"), "defaults": defaults}

"""Who is calling, and may they call this route: one decision for AWS and the local stack.

API Gateway (or the local gateway, doing its job) has already checked the credential; this module
reads what it left in the event and applies the route table:

- people sign in (Cognito, or the local issuer of `ivadas up --auth`): the authorizer's claims are in
  `requestContext.authorizer.claims` (`cognito:username`, `cognito:groups`);
- inspection stations send an API key bound to a usage plan: API Gateway puts the key's id in
  `requestContext.identity.apiKeyId` (it does so only for methods that require a key, after
  checking it);
- machines signing with IAM (SigV4): `requestContext.identity.userArn`.

Groups are ordered: `inspector` < `engineer` < `admin`; a station may only inspect. A route no rule
names needs `admin`, so a new route is closed until it is classified here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from api_core import ApiError

INSPECTOR, ENGINEER, ADMIN = "inspector", "engineer", "admin"
GROUP_RANK = {INSPECTOR: 1, ENGINEER: 2, ADMIN: 3}
#: the minimum a route needs: a group, `STATION` (a station key or IAM caller, or any signed-in person),
#: or `ANYONE` (no credential: the health check that load balancers and the local stack poll)
STATION, ANYONE = "station", "anyone"
#: the station API's SigV4 routes: /iam/predict and /iam/predict/batch (the same handlers)
IAM_PREFIX = "/iam"
READ = frozenset({"GET", "HEAD"})
ANY = None

#: (methods or ANY, path pattern, minimum). First match wins; the path is the request's, stage removed.
ROUTE_RULES: tuple[tuple[frozenset | None, re.Pattern, str], ...] = tuple(
    (methods, re.compile(pattern), minimum) for methods, pattern, minimum in (
        (READ, r"^/health$", ANYONE),
        (frozenset({"POST"}), r"^(/iam)?/predict(/batch)?$", STATION),
        # what an inspector sees: models, the inspection history, machines, monitoring
        (READ, r"^/models(/.*)?$", INSPECTOR),
        (READ, r"^/inspections(/.*)?$", INSPECTOR),
        (READ, r"^/assets(/.*)?$", INSPECTOR),
        (READ, r"^/monitoring(/.*)?$", INSPECTOR),
        (READ, r"^/versions$", INSPECTOR),
        # what changes models and what they learn from: approval, imports, datasets, trainings, trials, feedback
        (ANY, r"^/models(/.*)?$", ENGINEER),
        (ANY, r"^/versions/.+$", ENGINEER),
        (ANY, r"^/feedback$", ENGINEER),
        (ANY, r"^/monitoring/run$", ENGINEER),
        (ANY, r"^/inspections/.+$", ENGINEER),
        (ANY, r"^/datasets(/.*)?$", ENGINEER),
        (ANY, r"^/trainings(/.*)?$", ENGINEER),
        (ANY, r"^/trials(/.*)?$", ENGINEER),
        (ANY, r"^/uploads(/.*)?$", ENGINEER),
    ))


@dataclass(frozen=True)
class Principal:
    """The caller: `kind` is "user", "station" (API key), "iam" (SigV4) or "anonymous"."""

    kind: str
    name: str
    groups: frozenset[str] = frozenset()

    @property
    def rank(self) -> int:
        return max((GROUP_RANK.get(group, 0) for group in self.groups), default=0)


ANONYMOUS = Principal("anonymous", "anonymous")
#: the local stack without `--auth`: open on loopback, as before there was sign-in
LOCAL_OPEN = Principal("user", "local", frozenset({ADMIN}))


def enforced() -> bool:
    """`ACCESS_CONTROL=enforce|open`; unset, it is enforced wherever the code runs as a real Lambda
    function, so a deployment that forgets the setting is closed, not open."""
    mode = os.environ.get("ACCESS_CONTROL", "").strip().lower()
    if mode in ("enforce", "open"):
        return mode == "enforce"
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def parse_groups(value) -> frozenset[str]:
    """`cognito:groups` as API Gateway passes it: a list, or a string ("engineer", "[engineer, admin]",
    "engineer,admin" or space-separated, depending on the authorizer)."""
    if value is None:
        return frozenset()
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(str(v) for v in value if str(v))
    return frozenset(part for part in re.split(r"[\s,]+", str(value).strip().strip("[]")) if part)


def principal_of(event: dict) -> Principal:
    context = event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("claims")) or {}
    if claims:
        name = claims.get("cognito:username") or claims.get("username") or claims.get("sub") or "unknown"
        return Principal("user", str(name), parse_groups(claims.get("cognito:groups")))
    identity = context.get("identity") or {}
    if identity.get("apiKeyId"):
        return Principal("station", str(identity["apiKeyId"]))
    if identity.get("userArn"):
        return Principal("iam", str(identity["userArn"]))
    return ANONYMOUS


def minimum_for(method: str, path: str) -> str:
    for methods, pattern, minimum in ROUTE_RULES:
        if (methods is ANY or method.upper() in methods) and pattern.match(path):
            return minimum
    return ADMIN


def allows(principal: Principal, minimum: str) -> bool:
    if minimum == ANYONE:
        return True
    if principal.kind in ("station", "iam"):
        return minimum == STATION
    if principal.kind != "user":
        return False
    if minimum == STATION:
        minimum = INSPECTOR  # a person inspects as an inspector (or more)
    return principal.rank >= GROUP_RANK[minimum]


def authorize(event: dict) -> Principal:
    """The caller, if they may call this route; else the 401 (no credential) or 403 (not allowed)."""
    if not enforced():
        return LOCAL_OPEN
    principal = principal_of(event)
    method, path = event.get("httpMethod", "GET"), event.get("path") or "/"
    minimum = minimum_for(method, path)
    if allows(principal, minimum):
        return principal
    if principal is ANONYMOUS:
        raise ApiError(401, "unauthorized", "sign in (send your ID token as the Authorization header) or send a station key (x-api-key)")
    needed = "a station key or the inspector group" if minimum == STATION else f"the {minimum} group"
    who = {"station": "a station key", "iam": "an IAM caller"}.get(principal.kind, f"{principal.name} ({', '.join(sorted(principal.groups)) or 'no group'})")
    raise ApiError(403, "forbidden", f"{method} {path} needs {needed}; {who} may not call it")


def caller_name(event: dict) -> str:
    """Who made this request, for records such as an approval ("local" on the open local stack)."""
    return (principal_of(event) if enforced() else LOCAL_OPEN).name

"""The origin check: on AWS only CloudFront knows the secret it adds as `X-Origin-Verify`, so a
request straight to the API's own URL (around CloudFront and its WAF) is refused.

The secret rotates (Secrets Manager rotation, lambda/origin_rotation/rotate.py). While CloudFront's
edge locations take up a new value, some still send the old one, so the check accepts:

- AWSCURRENT;
- AWSPENDING while a rotation is under way (CloudFront already sends it);
- AWSPREVIOUS only for the grace period (`ORIGIN_SECRET_GRACE_S`, `GRACE_S` by default) after the
  current version was made; after that the old value is a replay and is refused, here and (within a
  minute) by the API's web ACL, which the rotation function keeps to the same rule.

Values are cached for `CACHE_S`; a value that matches none is checked again against a fresh read at
most every `REFRESH_FLOOR_S` (so the new value is accepted within seconds of a rotation, and
unknown values cannot make every request call Secrets Manager).

Requests to the station API (stage `stations`) carry no origin header: API Gateway has checked
their API key or SigV4 signature, and the principal it left in the event says so.
"""

from __future__ import annotations

import hmac
import os
import time

HEADER = "x-origin-verify"
STATION_STAGE = "stations"
CACHE_S = 60
REFRESH_FLOOR_S = 5
GRACE_S = 30 * 60


class OriginSecret:
    def __init__(self, secret_id: str, client=None, clock=time.time, grace_s: float | None = None):
        self.secret_id = secret_id
        self._client = client
        self.clock = clock
        # the deployment's grace (`ORIGIN_SECRET_GRACE_S`, the same value the web ACL's follows)
        self.grace_s = float(os.environ.get("ORIGIN_SECRET_GRACE_S", GRACE_S)) if grace_s is None else grace_s
        self._values: list[str] = []
        self._fetched = float("-inf")

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("secretsmanager")
        return self._client

    def accepts(self, value: str | None) -> bool:
        if not value:
            return False
        now = self.clock()
        if now - self._fetched >= CACHE_S:
            self.refresh()
        if self._matches(value):
            return True
        if now - self._fetched >= REFRESH_FLOOR_S:  # perhaps rotated since the last read
            self.refresh()
            return self._matches(value)
        return False

    def _matches(self, value: str) -> bool:
        return any(hmac.compare_digest(value.encode(), accepted.encode()) for accepted in self._values)

    def refresh(self) -> None:
        versions = self.client.list_secret_version_ids(SecretId=self.secret_id)["Versions"]
        by_stage = {stage: version for version in versions for stage in version.get("VersionStages", [])}
        current = by_stage["AWSCURRENT"]
        wanted = [current, by_stage.get("AWSPENDING")]
        previous = by_stage.get("AWSPREVIOUS")
        if previous is not None and self.clock() - current["CreatedDate"].timestamp() < self.grace_s:
            wanted.append(previous)
        values = []
        for version in wanted:
            if version is None:
                continue
            try:
                values.append(self.client.get_secret_value(SecretId=self.secret_id, VersionId=version["VersionId"])["SecretString"])
            except self.client.exceptions.ResourceNotFoundException:
                pass  # a rotation has begun: the pending version has no value until createSecret writes it
        self._values = values
        self._fetched = self.clock()


_secret: OriginSecret | None = None


def request_allowed(event: dict) -> bool:
    """Whether the request came the way it must: through CloudFront (the header), or to the station
    API with a credential API Gateway checked. Without `ORIGIN_VERIFY_SECRET_ARN` (the local stack)
    every request is."""
    global _secret
    arn = os.environ.get("ORIGIN_VERIFY_SECRET_ARN")
    if not arn:
        return True
    context = event.get("requestContext") or {}
    identity = context.get("identity") or {}
    if context.get("stage") == STATION_STAGE and (identity.get("apiKeyId") or identity.get("userArn")):
        return True
    if _secret is None or _secret.secret_id != arn:
        _secret = OriginSecret(arn)
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    return _secret.accepts(headers.get(HEADER))

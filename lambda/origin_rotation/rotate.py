"""Secrets Manager rotation of the origin secret: the value CloudFront adds to every API request as
`X-Origin-Verify`, and that the API's regional WAF and the API Lambda (lambda/predict/origin_secret.py)
check.

The four steps Secrets Manager calls, each safe to repeat:

- createSecret: a new random value as AWSPENDING (once per rotation token);
- setSecret: the regional WAF accepts AWSCURRENT or AWSPENDING, then CloudFront sends AWSPENDING
  (the Lambda accepts AWSPENDING already, so no request is refused while edges switch);
- testSecret: the WAF rule and CloudFront's origin header hold the new value;
- finishSecret: AWSPENDING becomes AWSCURRENT; the old value becomes AWSPREVIOUS, which the WAF
  and the Lambda both keep accepting for the grace period.

The grace period ends at the WAF the way it ends in the Lambda: a schedule invokes this function
every minute (any event without `Step`), and it makes the web ACL accept exactly what the Lambda
accepts (lambda/predict/origin_secret.py, the same rule): AWSCURRENT, AWSPENDING while a rotation is
under way, and AWSPREVIOUS only until `ORIGIN_SECRET_GRACE_S` after the current version was made.
Why a grace period rather than dropping the old value in finishSecret: UpdateDistribution returns
before CloudFront's edges have the new header (the distribution is "InProgress" for minutes), and
Secrets Manager calls the four steps within seconds, so at finishSecret some edges still send the old
value. The grace period (30 minutes by default) is many times that propagation; after it, a request
with the old value is a replay, refused by the WAF within a minute and by the Lambda at once.

Every change to the web ACL is a read-modify-write guarded by its LockToken: when another writer
got there first (WAFOptimisticLockException), the ACL and the wanted values are read again and the
change is made again.

Environment: DISTRIBUTION_ID, ORIGIN_HEADER, WEB_ACL_NAME, WEB_ACL_ID, WEB_ACL_RULE (the rule whose
statement is rewritten; the ACL is REGIONAL), SECRET_ARN and ORIGIN_SECRET_GRACE_S (for the schedule).
"""

from __future__ import annotations

import logging
import os
import time

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)
PASSWORD_LENGTH = 48
GRACE_S = 30 * 60
#: read-modify-write attempts on the web ACL when another writer changed it in between
LOCK_ATTEMPTS = 5
LOCK_PAUSE_S = 0.5


def handler(event, context, clients=None, clock=time.time):
    clients = clients or {name: boto3.client(name) for name in ("secretsmanager", "cloudfront", "wafv2")}
    if "Step" not in event:  # the schedule: end the grace period at the web ACL as the API Lambda does
        return follow_secret(clients, os.environ["SECRET_ARN"], clock)
    secrets, arn, token, step = clients["secretsmanager"], event["SecretId"], event["ClientRequestToken"], event["Step"]
    stages = secrets.describe_secret(SecretId=arn).get("VersionIdsToStages", {})
    if token not in stages:
        raise ValueError(f"version {token} is not a version of this secret")
    if "AWSCURRENT" in stages[token]:
        logger.info("version %s is already current", token)
        return
    if "AWSPENDING" not in stages[token]:
        raise ValueError(f"version {token} is not pending rotation")
    {"createSecret": create_secret, "setSecret": set_secret, "testSecret": test_secret,
     "finishSecret": finish_secret}[step](clients, arn, token)


def value(secrets, arn: str, stage: str, token: str | None = None) -> str:
    kwargs = {"VersionId": token, "VersionStage": stage} if token else {"VersionStage": stage}
    return secrets.get_secret_value(SecretId=arn, **kwargs)["SecretString"]


def create_secret(clients, arn: str, token: str) -> None:
    secrets = clients["secretsmanager"]
    try:
        value(secrets, arn, "AWSPENDING", token)
        return  # made by an earlier attempt of this rotation
    except secrets.exceptions.ResourceNotFoundException:
        pass
    new = secrets.get_random_password(PasswordLength=PASSWORD_LENGTH, ExcludePunctuation=True)["RandomPassword"]
    secrets.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=new, VersionStages=["AWSPENDING"])
    logger.info("created a pending origin secret")


def set_secret(clients, arn: str, token: str) -> None:
    """The web ACL first (current and pending, and a previous value still in its grace), CloudFront after."""
    secrets = clients["secretsmanager"]
    pending = value(secrets, arn, "AWSPENDING", token)
    update_web_acl(clients["wafv2"], lambda: accepted_now(secrets, arn, time.time(), grace_seconds()))
    update_origin_header(clients["cloudfront"], pending)


def test_secret(clients, arn: str, token: str) -> None:
    pending = value(clients["secretsmanager"], arn, "AWSPENDING", token)
    if pending not in accepted_by_web_acl(clients["wafv2"]):
        raise RuntimeError("the API's web ACL does not accept the pending origin secret")
    if origin_header(clients["cloudfront"]) != pending:
        raise RuntimeError("CloudFront does not send the pending origin secret")


def finish_secret(clients, arn: str, token: str) -> None:
    secrets = clients["secretsmanager"]
    stages = secrets.describe_secret(SecretId=arn)["VersionIdsToStages"]
    current = next(version for version, labels in stages.items() if "AWSCURRENT" in labels)
    secrets.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token,
                                        RemoveFromVersionId=current)
    logger.info("the pending origin secret is current")


# ------------------------------------------------------------------------------ CloudFront


def _api_origin(config: dict) -> dict:
    header = os.environ["ORIGIN_HEADER"].lower()
    for origin in config["Origins"]["Items"]:
        if any(h["HeaderName"].lower() == header for h in (origin.get("CustomHeaders") or {}).get("Items", [])):
            return origin
    raise RuntimeError(f"no origin of distribution {os.environ['DISTRIBUTION_ID']} sends {os.environ['ORIGIN_HEADER']}")


def origin_header(cloudfront) -> str:
    config = cloudfront.get_distribution_config(Id=os.environ["DISTRIBUTION_ID"])["DistributionConfig"]
    header = os.environ["ORIGIN_HEADER"].lower()
    return next(h["HeaderValue"] for h in _api_origin(config)["CustomHeaders"]["Items"] if h["HeaderName"].lower() == header)


def update_origin_header(cloudfront, new_value: str) -> None:
    answer = cloudfront.get_distribution_config(Id=os.environ["DISTRIBUTION_ID"])
    config = answer["DistributionConfig"]
    header = os.environ["ORIGIN_HEADER"].lower()
    for item in _api_origin(config)["CustomHeaders"]["Items"]:
        if item["HeaderName"].lower() == header:
            item["HeaderValue"] = new_value
    cloudfront.update_distribution(Id=os.environ["DISTRIBUTION_ID"], IfMatch=answer["ETag"], DistributionConfig=config)


# ------------------------------------------------------------------------------ the regional WAF


def grace_seconds() -> float:
    return float(os.environ.get("ORIGIN_SECRET_GRACE_S", GRACE_S))


def accepted_now(secrets, arn: str, now: float, grace_s: float) -> list[str]:
    """What the API Lambda accepts at `now` (lambda/predict/origin_secret.py `OriginSecret.refresh`):
    AWSCURRENT, AWSPENDING, and AWSPREVIOUS while the current version is younger than the grace."""
    versions = secrets.list_secret_version_ids(SecretId=arn)["Versions"]
    by_stage = {stage: version for version in versions for stage in version.get("VersionStages", [])}
    current = by_stage["AWSCURRENT"]
    wanted = [current, by_stage.get("AWSPENDING")]
    previous = by_stage.get("AWSPREVIOUS")
    if previous is not None and now - current["CreatedDate"].timestamp() < grace_s:
        wanted.append(previous)
    values = []
    for version in wanted:
        if version is None:
            continue
        try:
            values.append(secrets.get_secret_value(SecretId=arn, VersionId=version["VersionId"])["SecretString"])
        except secrets.exceptions.ResourceNotFoundException:
            pass  # a rotation has begun: the pending version has no value until createSecret writes it
    return list(dict.fromkeys(values))


def follow_secret(clients, arn: str, clock=time.time) -> dict:
    """Make the web ACL accept what the Lambda accepts now; change it only when it differs."""
    def wanted() -> list[str]:
        return accepted_now(clients["secretsmanager"], arn, clock(), grace_seconds())

    changed = update_web_acl(clients["wafv2"], wanted, only_if_different=True)
    if changed:
        logger.info("the web ACL now accepts %d origin secret value(s)", len(changed))
    return {"changed": bool(changed)}


def header_matches(secret_value: str) -> dict:
    return {"ByteMatchStatement": {
        "FieldToMatch": {"SingleHeader": {"Name": os.environ["ORIGIN_HEADER"].lower()}}, "PositionalConstraint": "EXACTLY",
        "SearchString": secret_value, "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}


def _acl(wafv2):
    return wafv2.get_web_acl(Name=os.environ["WEB_ACL_NAME"], Id=os.environ["WEB_ACL_ID"], Scope="REGIONAL")


def accepted_by_web_acl(wafv2) -> list[str]:
    """The header values the rule lets through (it blocks whatever matches none)."""
    return _accepted_by(_acl(wafv2)["WebACL"])


def _accepted_by(acl: dict) -> list[str]:
    rule = next(r for r in acl["Rules"] if r["Name"] == os.environ["WEB_ACL_RULE"])
    matches = rule["Statement"]["NotStatement"]["Statement"]
    statements = matches["OrStatement"]["Statements"] if "OrStatement" in matches else [matches]
    found = []
    for statement in statements:
        search = statement["ByteMatchStatement"]["SearchString"]
        found.append(search.decode() if isinstance(search, bytes) else search)
    return found


def update_web_acl(wafv2, accepted, only_if_different: bool = False) -> list[str] | None:
    """Block requests whose origin header is none of `accepted` (a list, or a function giving it, asked
    again on every attempt). Returns the values written, or None when nothing was (already so, with
    `only_if_different`)."""
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        answer = _acl(wafv2)
        acl = answer["WebACL"]
        values = accepted() if callable(accepted) else list(accepted)
        if only_if_different and sorted(_accepted_by(acl)) == sorted(values):
            return None
        either = ({"OrStatement": {"Statements": [header_matches(v) for v in values]}} if len(values) > 1
                  else header_matches(values[0]))
        for rule in acl["Rules"]:
            if rule["Name"] == os.environ["WEB_ACL_RULE"]:
                rule["Statement"] = {"NotStatement": {"Statement": either}}
        try:
            # UpdateWebACL replaces the whole specification: every setting the ACL has goes back as it was
            # (an empty one is left out: an empty Description, say, is refused)
            settable = wafv2.meta.service_model.operation_model("UpdateWebACL").input_shape.members
            kept = {key: value for key, value in acl.items() if key in settable and value not in (None, "", [], {})}
            wafv2.update_web_acl(**{**kept, "Scope": "REGIONAL", "Rules": acl["Rules"], "LockToken": answer["LockToken"]})
            return values
        except wafv2.exceptions.WAFOptimisticLockException:
            if attempt == LOCK_ATTEMPTS:
                raise
            logger.info("the web ACL changed since it was read (attempt %d); reading it again", attempt)
            time.sleep(LOCK_PAUSE_S * attempt)

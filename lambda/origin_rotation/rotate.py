"""Secrets Manager rotation of the origin secret: the value CloudFront adds to every API request as
`X-Origin-Verify`, and that the API's regional WAF and the API Lambda (lambda/predict/origin_secret.py)
check.

The four steps Secrets Manager calls, each safe to repeat:

- createSecret: a new random value as AWSPENDING (once per rotation token);
- setSecret: the regional WAF accepts AWSCURRENT or AWSPENDING, then CloudFront sends AWSPENDING
  (the Lambda accepts AWSPENDING already, so no request is refused while edges switch);
- testSecret: the WAF rule and CloudFront's origin header hold the new value;
- finishSecret: AWSPENDING becomes AWSCURRENT (the old value becomes AWSPREVIOUS: the WAF keeps
  accepting it until the next rotation, the Lambda only for its grace period).

Environment: DISTRIBUTION_ID, ORIGIN_HEADER, WEB_ACL_NAME, WEB_ACL_ID, WEB_ACL_RULE (the rule whose
statement is rewritten; the ACL is REGIONAL).
"""

from __future__ import annotations

import logging
import os

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)
PASSWORD_LENGTH = 48


def handler(event, context, clients=None):
    clients = clients or {name: boto3.client(name) for name in ("secretsmanager", "cloudfront", "wafv2")}
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
    secrets = clients["secretsmanager"]
    current, pending = value(secrets, arn, "AWSCURRENT"), value(secrets, arn, "AWSPENDING", token)
    update_web_acl(clients["wafv2"], [current, pending])
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


def header_matches(secret_value: str) -> dict:
    return {"ByteMatchStatement": {
        "FieldToMatch": {"SingleHeader": {"Name": os.environ["ORIGIN_HEADER"].lower()}}, "PositionalConstraint": "EXACTLY",
        "SearchString": secret_value, "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}


def _acl(wafv2):
    return wafv2.get_web_acl(Name=os.environ["WEB_ACL_NAME"], Id=os.environ["WEB_ACL_ID"], Scope="REGIONAL")


def accepted_by_web_acl(wafv2) -> list[str]:
    """The header values the rule lets through (it blocks whatever matches none)."""
    rule = next(r for r in _acl(wafv2)["WebACL"]["Rules"] if r["Name"] == os.environ["WEB_ACL_RULE"])
    matches = rule["Statement"]["NotStatement"]["Statement"]
    statements = matches["OrStatement"]["Statements"] if "OrStatement" in matches else [matches]
    found = []
    for statement in statements:
        search = statement["ByteMatchStatement"]["SearchString"]
        found.append(search.decode() if isinstance(search, bytes) else search)
    return found


def update_web_acl(wafv2, accepted: list[str]) -> None:
    """Block requests whose origin header is none of `accepted` (the rule's only statement)."""
    answer = _acl(wafv2)
    acl = answer["WebACL"]
    either = ({"OrStatement": {"Statements": [header_matches(v) for v in accepted]}} if len(accepted) > 1
              else header_matches(accepted[0]))
    for rule in acl["Rules"]:
        if rule["Name"] == os.environ["WEB_ACL_RULE"]:
            rule["Statement"] = {"NotStatement": {"Statement": either}}
    wafv2.update_web_acl(Name=acl["Name"], Scope="REGIONAL", Id=acl["Id"], DefaultAction=acl["DefaultAction"],
                         Rules=acl["Rules"], VisibilityConfig=acl["VisibilityConfig"], LockToken=answer["LockToken"],
                         **({"Description": acl["Description"]} if acl.get("Description") else {}))

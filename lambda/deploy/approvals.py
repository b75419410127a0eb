"""The Model Registry as the deploy Lambda reads and writes it.

The served version of a group is the approved version with the latest *approval record*: the
transitions IVADAS keeps in a package's customer metadata (`ivadas:transition:NNNN`, the format of
`pipelines.registry.SageMakerRegistry`). `LastModifiedTime` is not an approval time: editing an old
version's description would make it the served one. Approvals made outside IVADAS (the SageMaker
console, the API) get their record from the approval event, so every approved version has one.
"""

from __future__ import annotations

import datetime as dt
import json

APPROVED, REJECTED = "Approved", "Rejected"
HISTORY_PREFIX = "ivadas:transition:"
#: SageMaker limits customer metadata values to 256 characters; the full reason goes to ApprovalDescription.
REASON_CHARS, BY_CHARS = 120, 40
OLDEST = dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def parse_time(text: str | None) -> dt.datetime:
    """An ISO time from a history entry or an event (`...Z` or `+00:00`); unreadable ones sort first."""
    try:
        parsed = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return OLDEST
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def history(package: dict) -> list[dict]:
    properties = package.get("CustomerMetadataProperties", {})
    return [json.loads(properties[key]) for key in sorted(k for k in properties if k.startswith(HISTORY_PREFIX))]


def approved_at(package: dict) -> dt.datetime:
    approvals = [entry["at"] for entry in history(package) if entry.get("status") == APPROVED]
    return parse_time(approvals[-1]) if approvals else OLDEST


def approved_packages(sagemaker, group: str) -> list[dict]:
    summaries = []
    for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group,
                                                                        ModelApprovalStatus=APPROVED):
        summaries += page["ModelPackageSummaryList"]
    return [sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]


def served_package(sagemaker, group: str) -> dict | None:
    """The approved package with the latest approval record (the version number breaks ties)."""
    packages = approved_packages(sagemaker, group)
    return max(packages, key=lambda p: (approved_at(p), p["ModelPackageVersion"])) if packages else None


def append_transition(sagemaker, package: dict, status: str, at: str, by: str, reason: str, change_status: bool) -> None:
    """Add one history entry (and, if asked, set the approval status with the full reason)."""
    entry = {"status": status, "at": at, "by": by[:BY_CHARS], "reason": reason[:REASON_CHARS]}
    request = {"ModelPackageArn": package["ModelPackageArn"],
               "CustomerMetadataProperties": {f"{HISTORY_PREFIX}{len(history(package)):04d}": json.dumps(entry)}}
    if change_status:
        request.update(ModelApprovalStatus=status, ApprovalDescription=reason[:1000])
    sagemaker.update_model_package(**request)


def record_outside_approval(sagemaker, package_arn: str, event_time: str) -> bool:
    """Give an approval made outside IVADAS its record, at the time of the approval event.

    Idempotent: nothing is written when the package is no longer approved or its latest record is
    already an approval (the CLI and UI write their own)."""
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    entries = history(package)
    if package["ModelApprovalStatus"] != APPROVED or (entries and entries[-1].get("status") == APPROVED):
        return False
    at = parse_time(event_time)
    at = at if at != OLDEST else dt.datetime.now(dt.timezone.utc)
    # ApprovalDescription may still hold the reason of an earlier rejection: it is not this approval's
    append_transition(sagemaker, package, APPROVED, at.isoformat(timespec="milliseconds"), "sagemaker",
                      "approved outside IVADAS (SageMaker console or API)", change_status=False)
    return True


def reject_after_failed_deployment(sagemaker, package_arn: str, reason: str) -> bool:
    """Reject a version the endpoint could not keep (rolled back or failed), so that the registry
    says again what the endpoint serves. Returns False when it is not approved (nothing to undo)."""
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    if package["ModelApprovalStatus"] != APPROVED:
        return False
    append_transition(sagemaker, package, REJECTED, now(), "ivadas-deploy", reason, change_status=True)
    return True


def version_id(package: dict) -> str:
    return f"{package['ModelPackageGroupName']}/{package['ModelPackageVersion']}"

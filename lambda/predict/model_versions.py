"""The model registry as the API sees it: list versions of a kind, approve or reject one with a reason.

Locally (`MODEL_REGISTRY=local:<store>`) it is `pipelines.registry.LocalRegistry`, the registry
the local stack's endpoints follow. On AWS it is the SageMaker Model Registry through boto3, with
the transition history in customer metadata under the same keys `pipelines.registry` writes
(`ivadas:transition:NNNN`), so the CLI and the API read each other's approvals. Serving follows
approvals as before: the deployment Lambda (AWS) or the stack's watcher (local) serves the newest
approval still approved.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

from api_core import ApiError

PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"
HISTORY_PREFIX = "ivadas:transition:"


def pipeline_name() -> str:
    return os.environ.get("PIPELINE_NAME", "ivadas-training")


def group_of(kind: str) -> str:
    """The model package group of a kind (`pipelines.definition.model_package_group`)."""
    return f"{pipeline_name()}-{kind.replace('_', '-')}"


def _check_transition(version: dict, target: str) -> None:
    if version["status"] == REJECTED and target == APPROVED:
        raise ApiError(409, "rejected_version", f"{version['id']} is rejected; train a new version instead of approving it")
    if version["status"] == target:
        raise ApiError(409, "unchanged", f"{version['id']} is already {target.lower()}")


class LocalVersions:
    def __init__(self, store: str):
        from pipelines.registry import LocalRegistry

        self.registry = LocalRegistry(store)

    def list(self, group: str) -> list[dict]:
        return [v.to_dict() for v in self.registry.list(group)]

    def get(self, group: str, number: int) -> dict:
        from pipelines.registry import RegistryError

        try:
            return self.registry.get(group, number).to_dict()
        except RegistryError as exc:
            raise ApiError(404, "unknown_version", str(exc)) from None

    def set_status(self, group: str, number: int, status: str, reason: str, by: str) -> dict:
        _check_transition(self.get(group, number), status)
        return self.registry.set_status(group, number, status, reason, by).to_dict()


class SageMakerVersions:
    def __init__(self, client=None):
        import boto3

        self.client = client or boto3.client("sagemaker")

    def _summaries(self, group: str):
        try:
            for page in self.client.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
                yield from page["ModelPackageSummaryList"]
        except self.client.exceptions.ClientError as exc:
            if "does not exist" in str(exc) or exc.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
                return
            raise

    def _describe(self, arn: str) -> dict:
        package = self.client.describe_model_package(ModelPackageName=arn)
        properties = dict(package.get("CustomerMetadataProperties", {}))
        history = [json.loads(properties.pop(k)) for k in sorted(k for k in list(properties) if k.startswith(HISTORY_PREFIX))]
        group, number = package["ModelPackageGroupName"], int(package["ModelPackageVersion"])
        created = package.get("CreationTime")
        container = (package.get("InferenceSpecification") or {}).get("Containers", [{}])[0]
        return {"id": f"{group}/{number}", "group": group, "version": number, "status": package["ModelApprovalStatus"],
                "arn": package["ModelPackageArn"], "model_url": container.get("ModelDataUrl", ""),
                "metrics": package.get("ModelMetrics", {}), "metadata": properties, "history": history,
                "created_at": created.isoformat() if hasattr(created, "isoformat") else str(created or "")}

    def list(self, group: str) -> list[dict]:
        return sorted((self._describe(s["ModelPackageArn"]) for s in self._summaries(group)), key=lambda v: v["version"])

    def get(self, group: str, number: int) -> dict:
        for summary in self._summaries(group):
            if int(summary["ModelPackageVersion"]) == number:
                return self._describe(summary["ModelPackageArn"])
        raise ApiError(404, "unknown_version", f"no model version {group}/{number}")

    def set_status(self, group: str, number: int, status: str, reason: str, by: str) -> dict:
        version = self.get(group, number)
        _check_transition(version, status)
        entry = {"status": status, "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "by": by[:40],
                 "reason": reason[:120]}  # metadata values hold 256 characters; the full reason goes to ApprovalDescription
        history = version["history"] + [entry]
        properties = {**version["metadata"], **{f"{HISTORY_PREFIX}{i:04d}": json.dumps(h) for i, h in enumerate(history)}}
        self.client.update_model_package(ModelPackageArn=version["arn"], ModelApprovalStatus=status,
                                         ApprovalDescription=reason[:1000], CustomerMetadataProperties=properties)
        return self.get(group, number)


def from_environment():
    location = os.environ.get("MODEL_REGISTRY", "sagemaker")
    if location.startswith("local:"):
        return LocalVersions(location[len("local:"):])
    return SageMakerVersions()

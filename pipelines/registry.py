"""Model registry with two adapters behind one interface: SageMaker Model Registry and a local one.

States and transitions are SageMaker's: a version is registered `PendingManualApproval` (or as
the pipeline asks), then `Approved` or `Rejected`. The served version of a group is the most
recently approved one still approved, so rejecting it falls back to the previous approval.
Every transition is appended to the version's history (who, when, why); nothing is overwritten.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"
STATUSES = (PENDING, APPROVED, REJECTED)


class RegistryError(ValueError):
    """A registry request that cannot be honoured (unknown version, forbidden transition)."""


@dataclass
class ModelVersion:
    group: str
    version: int
    status: str
    model_url: str
    metrics: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    created_at: str = ""
    history: list = field(default_factory=list)  # [{status, at, by, reason}]
    arn: str = ""

    @property
    def id(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def approved_at(self) -> str:
        approvals = [h["at"] for h in self.history if h["status"] == APPROVED]
        return approvals[-1] if approvals else ""

    def to_dict(self) -> dict:
        return {**asdict(self), "id": self.id}


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return os.environ.get("USER", "unknown")


def check_transition(version: ModelVersion, target: str) -> None:
    if target not in (APPROVED, REJECTED):
        raise RegistryError(f"unknown status {target!r}")
    if version.status == REJECTED and target == APPROVED:
        raise RegistryError(f"{version.id} is rejected; register a new version instead of approving a rejected one")
    if version.status == target:
        raise RegistryError(f"{version.id} is already {target.lower()}")


def served_version(versions: list[ModelVersion]) -> ModelVersion | None:
    approved = [v for v in versions if v.status == APPROVED]
    return max(approved, key=lambda v: (v.approved_at, v.version)) if approved else None


def parse_version_id(text: str, prefix: str = "") -> tuple[str, int]:
    """`group/N`, `kind/N` (with the pipeline prefix) or a model-package ARN → (group, N)."""
    tail = text.split(":model-package/")[-1]
    group, _, number = tail.rpartition("/")
    if not group or not number.isdigit():
        raise RegistryError(f"{text!r} is not a model version; use GROUP/NUMBER, e.g. {prefix or 'ivadas-training'}-patchcore/1")
    if prefix and not group.startswith(prefix + "-"):
        from inference.kinds import MODEL_KINDS
        from pipelines.definition import model_package_group, resource_slug

        kinds = {name: name for name in MODEL_KINDS} | {resource_slug(name): name for name in MODEL_KINDS}
        if group in kinds:  # a kind's name stands for its group (`isolation_forest/2`)
            group = model_package_group(prefix, kinds[group])
    return group, int(number)


class LocalRegistry:
    """Versions as JSON files under `<store>/registry/<group>/<N>.json` (one writer at a time)."""

    def __init__(self, store: str | Path):
        self.root = Path(store) / "registry"

    def _path(self, group: str, version: int) -> Path:
        return self.root / group / f"{version}.json"

    def _save(self, version: ModelVersion) -> None:
        path = self._path(version.group, version.version)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(version.to_dict(), indent=2, sort_keys=True))
        partial.replace(path)

    def register(self, group: str, model_url: str, metrics: dict, metadata: dict, status: str = PENDING) -> ModelVersion:
        if status not in STATUSES:
            raise RegistryError(f"unknown approval status {status!r}; use one of {STATUSES}")
        existing = [v.version for v in self.list(group)]
        at = now()
        version = ModelVersion(group, max(existing, default=0) + 1, status, model_url, metrics, metadata, at,
                               [{"status": status, "at": at, "by": current_user(), "reason": "registered"}])
        version.arn = f"local:model-package/{version.id}"
        self._save(version)
        return version

    def groups(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def list(self, group: str | None = None, status: str | None = None) -> list[ModelVersion]:
        versions = []
        for name in [group] if group else self.groups():
            folder = self.root / name
            if folder.is_dir():
                for path in folder.glob("*.json"):
                    data = json.loads(path.read_text())
                    data.pop("id", None)
                    versions.append(ModelVersion(**data))
        return sorted((v for v in versions if status in (None, v.status)), key=lambda v: (v.group, v.version))

    def get(self, group: str, version: int) -> ModelVersion:
        path = self._path(group, version)
        if not path.is_file():
            raise RegistryError(f"no model version {group}/{version}")
        data = json.loads(path.read_text())
        data.pop("id", None)
        return ModelVersion(**data)

    def set_status(self, group: str, version: int, status: str, reason: str, by: str | None = None) -> ModelVersion:
        model = self.get(group, version)
        check_transition(model, status)
        model.status = status
        model.history.append({"status": status, "at": now(), "by": by or current_user(), "reason": reason})
        self._save(model)
        return model

    def served(self, group: str) -> ModelVersion | None:
        return served_version(self.list(group))


class SageMakerRegistry:
    """The SageMaker Model Registry through boto3; transitions are kept in customer metadata."""

    HISTORY_PREFIX = "ivadas:transition:"

    def __init__(self, client=None, region: str | None = None):
        import boto3

        self.client = client or boto3.client("sagemaker", region_name=region)

    def ensure_group(self, group: str, description: str = "IVADAS anomaly models") -> None:
        try:
            self.client.describe_model_package_group(ModelPackageGroupName=group)
        except self.client.exceptions.ClientError:
            self.client.create_model_package_group(ModelPackageGroupName=group, ModelPackageGroupDescription=description)

    def register(self, group: str, model_url: str, metrics: dict, metadata: dict, status: str = PENDING,
                 image_uri: str = "ivadas-endpoint:latest", metrics_url: str | None = None) -> ModelVersion:
        self.ensure_group(group)
        at = now()
        request = {
            "ModelPackageGroupName": group,
            "ModelApprovalStatus": status,
            "InferenceSpecification": {
                "Containers": [{"Image": image_uri, "ModelDataUrl": model_url}],
                "SupportedContentTypes": ["application/json", "image/png", "image/jpeg"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            "CustomerMetadataProperties": {
                **{k: str(v) for k, v in metadata.items()},
                self._history_key(0): json.dumps({"status": status, "at": at, "by": current_user(), "reason": "registered"}),
            },
        }
        if metrics_url:
            request["ModelMetrics"] = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_url}}}
        arn = self.client.create_model_package(**request)["ModelPackageArn"]
        return self._describe(arn)

    def _history_key(self, index: int) -> str:
        return f"{self.HISTORY_PREFIX}{index:04d}"

    def _describe(self, arn: str) -> ModelVersion:
        try:
            package = self.client.describe_model_package(ModelPackageName=arn)
        except self.client.exceptions.ClientError as exc:
            raise RegistryError(f"no model version {arn}: {exc.response['Error'].get('Message', '')}") from None
        return self._to_version(package)

    def _to_version(self, package: dict) -> ModelVersion:
        properties = dict(package.get("CustomerMetadataProperties", {}))
        history = [json.loads(properties.pop(k)) for k in sorted(k for k in list(properties) if k.startswith(self.HISTORY_PREFIX))]
        container = package.get("InferenceSpecification", {}).get("Containers", [{}])[0]
        created = package.get("CreationTime")
        return ModelVersion(
            group=package["ModelPackageGroupName"], version=int(package["ModelPackageVersion"]),
            status=package["ModelApprovalStatus"], model_url=container.get("ModelDataUrl", ""),
            metrics=package.get("ModelMetrics", {}), metadata=properties,
            created_at=created.isoformat() if hasattr(created, "isoformat") else str(created or ""),
            history=history, arn=package["ModelPackageArn"],
        )

    def _arn(self, group: str, version: int) -> str:
        for summary in self._summaries(group):
            if int(summary["ModelPackageVersion"]) == version:
                return summary["ModelPackageArn"]
        raise RegistryError(f"no model version {group}/{version}")

    def _summaries(self, group: str, status: str | None = None):
        kwargs = {"ModelPackageGroupName": group}
        if status:
            kwargs["ModelApprovalStatus"] = status
        for page in self.client.get_paginator("list_model_packages").paginate(**kwargs):
            yield from page["ModelPackageSummaryList"]

    def groups(self) -> list[str]:
        pages = self.client.get_paginator("list_model_package_groups").paginate()
        return sorted(g["ModelPackageGroupName"] for page in pages for g in page["ModelPackageGroupSummaryList"])

    def list(self, group: str | None = None, status: str | None = None) -> list[ModelVersion]:
        versions = []
        for name in [group] if group else self.groups():
            versions += [self._describe(s["ModelPackageArn"]) for s in self._summaries(name, status)]
        return sorted(versions, key=lambda v: (v.group, v.version))

    def get(self, group: str, version: int) -> ModelVersion:
        return self._describe(self._arn(group, version))

    def set_status(self, group: str, version: int, status: str, reason: str, by: str | None = None) -> ModelVersion:
        model = self.get(group, version)
        check_transition(model, status)
        # metadata values are limited to 256 characters; the full reason goes to ApprovalDescription
        entry = {"status": status, "at": now(), "by": (by or current_user())[:40], "reason": reason[:120]}
        properties = {**model.metadata, **{self._history_key(i): json.dumps(h) for i, h in enumerate(model.history)},
                      self._history_key(len(model.history)): json.dumps(entry)}
        # The whole set is sent: the service merges keys, some emulators replace them; both end equal.
        self.client.update_model_package(
            ModelPackageArn=model.arn, ModelApprovalStatus=status, ApprovalDescription=reason[:1000],
            CustomerMetadataProperties=properties,
        )
        return self.get(group, version)

    def served(self, group: str) -> ModelVersion | None:
        return served_version(self.list(group, APPROVED))

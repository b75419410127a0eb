"""Finding a model version's monitoring reference: through the local registry's metadata, or beside
the evaluation a SageMaker model package's metrics point at. Each version is looked up once."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pipelines.monitoring.reference import MONITORING_REFERENCE_KEY, REFERENCE_FILE


def _split(version: str) -> tuple[str, int] | None:
    group, _, number = (version or "").rpartition("/")
    return (group, int(number)) if group and number.isdigit() else None


class _References:
    """A model version (`group/number`) → its reference, each version read once; subclasses say how
    a registered version's reference is read (None when it has none)."""

    def __init__(self):
        self.lookup = lru_cache(maxsize=None)(self._load)

    def __call__(self, kind: str, version: str) -> dict | None:
        return self.lookup(version)

    def _load(self, version: str) -> dict | None:
        parts = _split(version)
        if parts is None:
            return None
        try:
            registered = self.registry.get(*parts)
        except ValueError:  # a version no longer in this registry
            return None
        return self._read(registered)

    def _read(self, registered) -> dict | None:
        raise NotImplementedError


class LocalReferences(_References):
    def __init__(self, store: str | Path):
        from pipelines.registry import LocalRegistry

        self.registry = LocalRegistry(store)
        super().__init__()

    def _read(self, registered) -> dict | None:
        path = registered.metadata.get(MONITORING_REFERENCE_KEY)
        return json.loads(Path(path).read_text()) if path and Path(path).is_file() else None


class SageMakerReferences(_References):
    def __init__(self, region: str | None = None, sagemaker=None, s3=None):
        import boto3

        from pipelines.registry import SageMakerRegistry

        self.registry = SageMakerRegistry(sagemaker, region=region)
        self.s3 = s3 or boto3.client("s3", region_name=region)
        super().__init__()

    def _read(self, registered) -> dict | None:
        uri = registered.metrics.get("ModelQuality", {}).get("Statistics", {}).get("S3Uri", "")
        if not uri.startswith("s3://"):
            return None
        bucket, _, key = uri[len("s3://"):].partition("/")
        key = key.rsplit("/", 1)[0] + "/" + REFERENCE_FILE
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.s3.exceptions.ClientError:
            return None
        return json.loads(body)

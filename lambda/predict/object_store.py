"""Objects under one root, the same for an S3 bucket (AWS) and a folder (the local stack).

`SENSOR_STORE` names it: `s3://bucket[/prefix]` or a folder path. Keys use `/` in both, so the
sensor feed and the API read `sensors/<asset>/...` the same way wherever they run.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path


class FolderStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"key {key!r} leaves the store")
        return path

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix`, sorted."""
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)).replace(os.sep, "/") for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith("."))

    def folders(self, prefix: str) -> list[str]:
        """Names of the folders directly under `prefix`."""
        base = self._path(prefix)
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        """Bytes of the object, None when there is none."""
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(data)
        partial.replace(path)  # readers never see half a result

    def move(self, key: str, target: str) -> None:
        destination = self._path(target)
        destination.parent.mkdir(parents=True, exist_ok=True)
        self._path(key).replace(destination)

    def copy(self, key: str, target: str) -> None:
        self.put(target, self.get(key))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    def __init__(self, bucket: str, prefix: str = "", s3=None, kms_key: str | None = None):
        import boto3

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.s3 = s3 or boto3.client("s3")
        self.kms_key = kms_key

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, key: str) -> str:
        return key[len(self.prefix) + 1:] if self.prefix else key

    def list(self, prefix: str) -> list[str]:
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            keys += [self._relative(item["Key"]) for item in page.get("Contents", []) if not item["Key"].endswith("/")]
        return sorted(keys)

    def folders(self, prefix: str) -> list[str]:
        base = self._key(prefix.rstrip("/") + "/")
        names = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
            names += [p["Prefix"][len(base):].strip("/") for p in page.get("CommonPrefixes", [])]
        return sorted(names)

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        """Bytes of the object, None when there is none."""
        from botocore.exceptions import ClientError

        try:
            return self.s3.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def download_url(self, key: str, seconds: int, content_type: str) -> str:
        """A link that reads the object for `seconds`, signed with this client's credentials (SigV4,
        which objects encrypted with KMS require), served as `content_type` whatever it was stored as."""
        return self._signer.generate_presigned_url("get_object", ExpiresIn=seconds, Params={
            "Bucket": self.bucket, "Key": self._key(key), "ResponseContentType": content_type})

    @cached_property
    def _signer(self):
        import boto3
        from botocore.config import Config

        # this client's endpoint, in the bucket's region where the API runs: a link through another
        # region's would be redirected, and a redirected signed request no longer matches its signature
        return boto3.client("s3", region_name=self.s3.meta.region_name, endpoint_url=self.s3.meta.endpoint_url,
                            config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))

    def put(self, key: str, data: bytes) -> None:
        extra = {"ServerSideEncryption": "aws:kms", **({"SSEKMSKeyId": self.kms_key} if self.kms_key else {})}
        self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)

    def move(self, key: str, target: str) -> None:
        extra = {"ServerSideEncryption": "aws:kms", **({"SSEKMSKeyId": self.kms_key} if self.kms_key else {})}
        self.s3.copy_object(Bucket=self.bucket, Key=self._key(target), CopySource={"Bucket": self.bucket, "Key": self._key(key)},
                            **extra)
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    def copy(self, key: str, target: str) -> None:
        extra = {"ServerSideEncryption": "aws:kms", **({"SSEKMSKeyId": self.kms_key} if self.kms_key else {})}
        self.s3.copy_object(Bucket=self.bucket, Key=self._key(target), CopySource={"Bucket": self.bucket, "Key": self._key(key)},
                            **extra)

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(key))


def from_location(location: str, kms_key: str | None = None):
    """A store at `s3://bucket[/prefix]` or in a folder."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        return S3Store(bucket, prefix, kms_key=kms_key)
    return FolderStore(location)


def from_environment():
    """The store this deployment uses (`SENSOR_STORE`), or None when sensors are not set up."""
    location = os.environ.get("SENSOR_STORE", "")
    if not location:
        return None
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        return S3Store(bucket, prefix, kms_key=os.environ.get("SENSOR_STORE_KMS_KEY") or None)
    return FolderStore(location)

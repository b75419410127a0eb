"""Browser uploads that bypass the API (API Gateway stops at 10 MB, Lambda at 6 MB).

On AWS: an S3 presigned POST (`generate_presigned_post`): the browser sends the file as a form
straight to the data bucket, under `datasets/uploads/<id>/`, within the size the policy allows.
Locally: the same form, posted to the local gateway's `/local-s3/upload`, which checks an HMAC of
the same conditions (key, size limit, expiry) and writes into the local store. The browser code is
the same for both: POST `fields` plus `file` as multipart/form-data to `url`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

EXPIRES_S = 15 * 60
#: where forms may put files: dataset uploads, and detectors being imported (routes_imports.py)
UPLOAD_PREFIXES = ("datasets/uploads/", "datasets/imports/")
LOCAL_UPLOAD_PATH = "/local-s3/upload"


class S3Presigner:
    def __init__(self, bucket: str, prefix: str = "", kms_key: str | None = None, s3=None):
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix, self.kms_key = bucket, prefix.strip("/"), kms_key
        # SigV4 and the regional virtual-hosted endpoint: presigned posts to a KMS-encrypted bucket need
        # both, and the UI's content security policy allows exactly that origin
        region = boto3.session.Session().region_name or "us-east-1"
        self.s3 = s3 or boto3.client("s3", region_name=region, endpoint_url=f"https://s3.{region}.amazonaws.com",
                                     config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))

    def presign(self, key: str, max_bytes: int) -> dict:
        full = f"{self.prefix}/{key}" if self.prefix else key
        fields = {"x-amz-server-side-encryption": "aws:kms"}
        conditions = [["content-length-range", 1, max_bytes], {"x-amz-server-side-encryption": "aws:kms"}]
        if self.kms_key:
            fields["x-amz-server-side-encryption-aws-kms-key-id"] = self.kms_key
            conditions.append({"x-amz-server-side-encryption-aws-kms-key-id": self.kms_key})
        post = self.s3.generate_presigned_post(self.bucket, full, Fields=fields, Conditions=conditions, ExpiresIn=EXPIRES_S)
        return {"url": post["url"], "fields": post["fields"], "max_bytes": max_bytes, "expires_in": EXPIRES_S}


class LocalPresigner:
    """The local stack's stand-in for S3 presigned POSTs, signed with a secret the stack shares
    between the API and the gateway's upload route."""

    def __init__(self, secret: str):
        self.secret = secret.encode()

    def signature(self, key: str, max_bytes: int, expires: int) -> str:
        return hmac.new(self.secret, f"{key}\n{max_bytes}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def presign(self, key: str, max_bytes: int) -> dict:
        expires = int(time.time()) + EXPIRES_S
        fields = {"key": key, "max_bytes": str(max_bytes), "expires": str(expires),
                  "signature": self.signature(key, max_bytes, expires)}
        return {"url": LOCAL_UPLOAD_PATH, "fields": fields, "max_bytes": max_bytes, "expires_in": EXPIRES_S}

    def check(self, fields: dict, size: int) -> tuple[str, str | None]:
        """(key, None) when the form may be stored, else (key, why not) as S3 would refuse it."""
        try:
            key, max_bytes, expires = fields["key"], int(fields["max_bytes"]), int(fields["expires"])
        except (KeyError, ValueError):
            return "", "the form lacks its key, max_bytes or expires field"
        if not hmac.compare_digest(self.signature(key, max_bytes, expires), fields.get("signature", "")):
            return key, "the form's signature does not match its conditions"
        if expires < time.time():
            return key, "the upload form has expired; ask for a new one"
        if not 1 <= size <= max_bytes:
            return key, f"the file is {size} bytes; this form allows 1 to {max_bytes}"
        if not key.startswith(UPLOAD_PREFIXES):
            return key, f"uploads go under {' or '.join(UPLOAD_PREFIXES)} only"
        return key, None


def from_environment():
    """`UPLOAD_SIGNING=s3` (with `DATASET_STORE=s3://...`) or `local` (with `LOCAL_UPLOAD_SECRET`)."""
    location = os.environ.get("DATASET_STORE", "")
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        return S3Presigner(bucket, prefix, os.environ.get("DATASET_STORE_KMS_KEY") or None)
    secret = os.environ.get("LOCAL_UPLOAD_SECRET")
    if not secret:
        return None
    return LocalPresigner(secret)

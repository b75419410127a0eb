"""Errors a user can cause, each with the HTTP status and code the API answers with.

Serving maps these to `{"error": {"code", "message"}}`; anything else is our fault (500).
"""

from __future__ import annotations


class IvadasError(Exception):
    """Base of every error caused by input; `status` and `code` follow the API contract."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(IvadasError):
    status, code = 400, "bad_request"


class UnknownClass(IvadasError):
    status, code = 404, "unknown_class"


class UnknownModel(IvadasError):
    status, code = 404, "unknown_model"


class PayloadTooLarge(IvadasError):
    status, code = 413, "payload_too_large"


class NotAnImage(IvadasError):
    status, code = 415, "unsupported_media_type"


class UnusableImage(IvadasError):
    status, code = 422, "unusable_image"


class BundleError(IvadasError):
    """A model bundle that cannot be served: wrong schema, missing file, mismatched backbone."""

    status, code = 500, "bundle_invalid"


class DatasetError(IvadasError):
    """A dataset folder that cannot be used as asked (missing class, empty train/good, ...)."""

    status, code = 400, "dataset_invalid"

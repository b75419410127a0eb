"""Datasets per class, uploads and the feedback loop:

GET /datasets, GET /datasets/{class_name}, GET|DELETE /datasets/{class_name}/images/{image_id},
POST /datasets/uploads (an upload form: presigned S3 POST on AWS, the gateway's signed form locally),
POST /datasets/uploads/{upload_id}/complete (check the uploaded image or zip and add it),
POST /feedback (a verdict marked right or wrong: the verified image joins its class's dataset).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
from pathlib import Path
from typing import Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, Field

import class_datasets as datasets
import object_store
import uploads
from api_core import ApiError, json_body, logger, validated
from class_datasets import ANOMALOUS, GOOD, UPLOADS, Datasets, check_name, new_image, plan_zip

router = APIGatewayRouter()
_datasets = None


def store():
    location = os.environ.get("DATASET_STORE", "")
    if not location:
        raise ApiError(503, "datasets_unavailable", "this deployment has no dataset store (DATASET_STORE)")
    return object_store.from_location(location, os.environ.get("DATASET_STORE_KMS_KEY") or None)


def dataset_store() -> Datasets:
    global _datasets
    if _datasets is None:
        _datasets = Datasets(store())
    return _datasets


def created(body: dict) -> Response:
    return Response(201, content_types.APPLICATION_JSON, json.dumps(body))


# ------------------------------------------------------------------------------ reading


@router.get("/datasets")
def list_datasets():
    data = dataset_store()
    return {"classes": [data.summary(name) for name in data.classes()], "min_good_images": datasets.MIN_GOOD_IMAGES}


@router.get("/datasets/<class_name>")
def describe_dataset(class_name: str):
    check_name(class_name)
    data = dataset_store()
    if class_name not in data.classes():
        raise ApiError(404, "unknown_class", f"there is no dataset for class {class_name!r}")
    entries = data.entries(class_name)
    return {**data.summary(class_name, entries), "images_list": [e.to_dict() for e in entries]}


@router.get("/datasets/<class_name>/images/<image_id>")
def preview_image(class_name: str, image_id: str):
    check_name(class_name)
    return dataset_store().preview(class_name, image_id)


@router.delete("/datasets/<class_name>/images/<image_id>")
def remove_image(class_name: str, image_id: str):
    check_name(class_name)
    data = dataset_store()
    data.remove(class_name, image_id)
    return {"removed": image_id, **data.summary(class_name)}


# ------------------------------------------------------------------------------- uploads


class FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=1)


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["image", "zip"]
    filename: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=1, description="bytes the browser will send")
    class_name: str | None = None
    label: Literal["good", "anomalous"] | None = None
    defect: str | None = None
    split: Literal["train", "test"] | None = None
    mask: FileSpec | None = None


def _limit_of(request_type: str) -> int:
    return datasets.MAX_ZIP_BYTES if request_type == "zip" else datasets.MAX_IMAGE_FILE_BYTES


def _check_upload_request(request: UploadRequest) -> None:
    limit = _limit_of(request.type)
    if request.size > limit:
        raise ApiError(413, "payload_too_large", f"{request.filename} is {request.size} bytes; a {request.type} may have at most {limit}")
    if request.class_name is not None:
        check_name(request.class_name)
    if request.defect:
        check_name(request.defect, "defect type")
    if request.type == "image":
        if not request.class_name or not request.label:
            raise ApiError(400, "bad_request", "an image upload needs class_name and label ('good' or 'anomalous')")
        if request.mask and request.label != ANOMALOUS:
            raise ApiError(400, "bad_request", "only anomalous images have masks")
        if request.mask and request.mask.size > datasets.MAX_IMAGE_FILE_BYTES:
            raise ApiError(413, "payload_too_large", f"the mask is {request.mask.size} bytes; the limit is {datasets.MAX_IMAGE_FILE_BYTES}")
    elif request.label or request.mask or request.defect or request.split:
        raise ApiError(400, "bad_request", "a zip carries its labels in its folders (MVTec layout) or holds good images only")


@router.post("/datasets/uploads")
def start_upload():
    request = validated(UploadRequest, json_body(router.current_event))
    _check_upload_request(request)
    presigner = uploads.from_environment()
    if presigner is None:
        raise ApiError(503, "uploads_unavailable", "this deployment cannot sign uploads")
    upload_id = uuid.uuid4().hex
    base = f"{UPLOADS}/{upload_id}"
    dataset_store().store.put(f"{base}/request.json", request.model_dump_json().encode())
    targets = {"file": presigner.presign(f"{base}/file", _limit_of(request.type))}
    if request.mask:
        targets["mask"] = presigner.presign(f"{base}/mask", datasets.MAX_IMAGE_FILE_BYTES)
    return created({"upload_id": upload_id, "targets": targets})


@router.post("/datasets/uploads/<upload_id>/complete")
def complete_upload(upload_id: str):
    if not upload_id.isalnum() or len(upload_id) != 32:
        raise ApiError(400, "bad_request", "upload_id is not an upload's id")
    data = dataset_store()
    base = f"{UPLOADS}/{upload_id}"
    if not data.store.exists(f"{base}/request.json"):
        raise ApiError(404, "unknown_upload", f"no upload {upload_id} is waiting (completed, or never started)")
    request = UploadRequest.model_validate_json(data.store.get(f"{base}/request.json"))
    if not data.store.exists(f"{base}/file"):
        raise ApiError(409, "upload_missing", f"{request.filename} has not arrived yet; send it to the upload form first")
    try:
        result = _import(data, request, base)
    finally:  # accepted or refused, the staged files go: a refused upload leaves nothing behind
        for name in ("file", "mask", "request.json"):
            data.store.delete(f"{base}/{name}")
    return created(result)


def _import(data: Datasets, request: UploadRequest, base: str) -> dict:
    payload = data.store.get(f"{base}/file")
    if len(payload) > _limit_of(request.type):
        raise ApiError(413, "payload_too_large", f"{request.filename} is {len(payload)} bytes; the limit is {_limit_of(request.type)}")
    if request.type == "image":
        mask = data.store.get(f"{base}/mask") if request.mask and data.store.exists(f"{base}/mask") else None
        if request.mask and mask is None:
            raise ApiError(409, "upload_missing", "the mask has not arrived yet; send it to its upload form first")
        image = new_image(payload, request.filename, request.label, request.defect, request.split, mask)
        result = data.add(request.class_name, [image])
        return {"classes": {request.class_name: {**result, **data.summary(request.class_name)}}}
    plan = plan_zip(payload, request.class_name)
    results = {name: data.add(name, images) for name, images in plan.classes.items()}
    logger.info("zip imported", extra={"classes": {n: r["added"] for n, r in results.items()}})
    return {"classes": {name: {**r, **data.summary(name)} for name, r in results.items()}, "skipped": plan.skipped}


# ------------------------------------------------------------------------------ feedback


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    correct: bool = Field(description="true: the verdict was right; false: a false alarm or a missed defect")
    request_id: str | None = Field(default=None, min_length=1, max_length=100, description="an inspection of the history")
    timestamp: str | None = Field(default=None, max_length=40, description="the inspection's timestamp (from the history)")
    trial_id: str | None = Field(default=None, min_length=1, max_length=64)
    index: int | None = Field(default=None, ge=0, description="the image's position in the trial")
    image_base64: str | None = Field(default=None, min_length=1, description="the image, when the history did not keep it")


def _decode(text: str) -> bytes:
    text = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_request", "image_base64 is not valid base64") from None


def _inspection(request: FeedbackRequest) -> tuple[str, dict, bytes | None]:
    from routes_predict import inspections

    record = inspections().get(request.request_id, request.timestamp)
    if record is None:
        raise ApiError(404, "unknown_inspection", f"no inspection {request.request_id!r} in the history")
    image = None
    if record.get("image_key"):
        image = read_kept_image(record["image_key"])
    return f"inspection:{request.request_id}", record, image


def read_kept_image(location: str) -> bytes | None:
    if location.startswith("s3://"):
        import boto3

        bucket, _, key = location[5:].partition("/")
        return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    path = Path(location)
    return path.read_bytes() if path.is_file() else None


def _trial_result(request: FeedbackRequest) -> tuple[str, dict, bytes | None]:
    from trials import Trials

    trial = Trials(dataset_store().store).get(request.trial_id)
    results = trial.get("results") or []
    if request.index is None or request.index >= len(results):
        raise ApiError(400, "bad_request", f"index must name one of the trial's {len(results)} results")
    result = results[request.index]
    if "error" in result:
        raise ApiError(409, "no_verdict", f"the trial could not score {result.get('name')}: there is no verdict to mark")
    record = {**result, "class_name": trial["class_name"], "model_version": trial["version"]}
    return f"trial:{request.trial_id}:{request.index}", record, Trials(dataset_store().store).image(request.trial_id, request.index)


@router.post("/feedback")
def feedback():
    request = validated(FeedbackRequest, json_body(router.current_event))
    if (request.request_id is None) == (request.trial_id is None):
        raise ApiError(400, "bad_request", "name either an inspection (request_id) or a trial result (trial_id and index)")
    source, record, image = _inspection(request) if request.request_id else _trial_result(request)
    if image is None and request.image_base64:
        image = _decode(request.image_base64)
    if image is None:
        raise ApiError(409, "image_not_kept", "this inspection's image was not kept (only anomalous ones are); "
                                              "send it as image_base64 with the feedback")
    class_name = check_name(record["class_name"])
    data = dataset_store()
    marker = f"datasets/feedback/{source.replace(':', '/')}.json"
    if data.store.exists(marker):
        raise ApiError(409, "already_verified", "this result was already marked; remove the image from the dataset to undo")
    truly_anomalous = bool(record["is_anomaly"]) == request.correct
    label = ANOMALOUS if truly_anomalous else GOOD
    verdict = {"source": source, "correct": request.correct, "verdict_was_anomaly": bool(record["is_anomaly"]),
               "model_version": record.get("model_version"), "truth": label}
    # good → training images; anomalous → evaluation images (issue: verified images are ground truth)
    checked = new_image(image, source, label, None, "train" if label == GOOD else "test", source="feedback")
    result = data.add(class_name, [checked], verified=verdict)
    data.store.put(marker, json.dumps({**verdict, "image": checked.digest, "at": datasets.now()}).encode())
    summary = data.summary(class_name)
    what = ("a missed defect" if truly_anomalous else "a false alarm") if not request.correct else "confirmed"
    return created({"class_name": class_name, "image_id": checked.digest, "label": label, "split": checked.split,
                    "duplicate": result["duplicates"] == 1, "marked": what,
                    "verified_pending": summary["verified_pending"], "dataset": summary})

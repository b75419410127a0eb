"""Bring-your-own detectors from the browser, as `ivadas models import` does on the command line:

POST /models/import/uploads (upload forms for the ONNX graph, its names file and a labelled zip) ·
POST /models/import (the product class and the anomalous classes: starts the import job, or again
after SageMaker refused to start it) ·
GET /models/imports · GET /models/imports/{import_id} (status; the evaluation, or why it was refused).

The files go straight to storage with the same upload forms as datasets (a graph is often larger
than API Gateway's 10 MB); the job runs the command line's importer on them (imports.py), so a
graph that is not a detector, names that disagree with its classes or a labelled set with bad boxes
are refused with the importer's own words, and nothing is registered. The version it registers is
approved or rejected like any other (POST /versions/detector/{n}/approval).
"""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, Field

import uploads
from api_core import ApiError, json_body, logger, validated
from class_datasets import check_name, now
from imports import (ACTIVE, ImportRecords, check_file, check_labelled_zip, launcher_from_environment, limit_of,
                     startable, sweep_abandoned)
from routes_datasets import dataset_store

router = APIGatewayRouter()
#: Ultralytics' NMS default, as `ivadas models import --iou`
DEFAULT_IOU = 0.7


def created(body: dict) -> Response:
    return Response(201, content_types.APPLICATION_JSON, json.dumps(body))


def records() -> ImportRecords:
    return ImportRecords(dataset_store().store)


def caller() -> str:
    from access import caller_name

    return caller_name(router.current_event.raw_event)


class FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=1, description="bytes the browser will send")


class ImportUploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    graph: FileSpec = Field(description="the detector exported to ONNX (.onnx)")
    names: FileSpec | None = Field(default=None, description="data.yaml or one name per line; none: the graph's metadata")
    labelled: FileSpec | None = Field(default=None, description="a zip of images and YOLO .txt labels to evaluate on")


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    import_id: str = Field(min_length=1, max_length=64)
    class_name: str = Field(min_length=1, max_length=64, description="the product class the detector inspects")
    anomalous_classes: list[str] = Field(min_length=1, max_length=200, description="detector classes (names or ids) "
                                                                                  "that make an image anomalous")
    iou: float = Field(default=DEFAULT_IOU, gt=0, le=1, description="IoU threshold of NMS")


def refreshed(record: dict) -> dict:
    launcher = launcher_from_environment()
    if record.get("backend") == launcher.backend and record["status"] in ACTIVE:
        record = launcher.refresh(record, records())
    return record


@router.post("/models/import/uploads")
def start_import_upload():
    request = validated(ImportUploadRequest, json_body(router.current_event))
    files = {role: spec for role, spec in (("graph", request.graph), ("names", request.names), ("labelled", request.labelled))
             if spec is not None}
    for role, spec in files.items():
        check_file(role, spec.filename, spec.size)
    presigner = uploads.from_environment()
    if presigner is None:
        raise ApiError(503, "uploads_unavailable", "this deployment cannot sign uploads")
    store = records()
    sweep_abandoned(store)
    record = store.new({role: spec.model_dump() for role, spec in files.items()}, caller())
    targets = {role: presigner.presign(spec["key"], limit_of(role)) for role, spec in record["files"].items()}
    store.save(record)
    return created({"import_id": record["id"], "targets": targets})


@router.post("/models/import")
def start_import():
    request = validated(ImportRequest, json_body(router.current_event))
    check_name(request.class_name)
    anomalous = [name.strip() for name in request.anomalous_classes if name.strip()]
    if not anomalous:
        raise ApiError(400, "bad_request", "choose at least one anomalous class")
    store = records()
    record = store.get(request.import_id)
    if not startable(record):
        raise ApiError(409, "import_started", f"import {record['id']} was started already ({record['status']})")
    for refusal in ("retryable", "failure_reason", "start_error", "ended_at"):  # a start again after a refused one
        record.pop(refusal, None)
    missing = store.missing_files(record)
    if missing:
        raise ApiError(409, "upload_missing", f"{', '.join(missing)} has not arrived yet; send it to its upload form first")
    # the upload forms cap every file's size (S3 refuses a larger one); the zip is read and checked here,
    # before any job starts, with the checks of dataset zips
    if "labelled" in record["files"]:
        try:
            record["labelled_set"] = check_labelled_zip(store.store.get(record["files"]["labelled"]["key"]))
        except ApiError as error:
            store.remove_files(record)  # a refused zip leaves nothing behind
            record.update(status="Failed", failure_reason=error.message, ended_at=now())
            store.save(record)
            raise
    launcher = launcher_from_environment()
    record.update(status="Queued", class_name=request.class_name, anomalous_classes=anomalous, iou=request.iou,
                  backend=launcher.backend, by=caller())
    if launcher.backend == "local":
        record = store.save(record)  # the worker picks it up
    else:
        # Queued before SageMaker is asked: a start that never answers is settled by GET (SageMakerImports.refresh);
        # a refused one is saved Failed with the reason answered, its files kept to start it again
        store.save(record)
        record = store.start(record, launcher.start)
    logger.info("detector import started", extra={"import": record["id"], "class_name": request.class_name})
    return created(record)


@router.get("/models/imports")
def list_imports():
    return {"imports": [refreshed(r) for r in records().all()[:50]]}


@router.get("/models/imports/<import_id>")
def describe_import(import_id: str):
    return refreshed(records().get(import_id))

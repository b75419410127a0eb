"""Trainings, their evaluation, approval and trial detections:

POST /trainings (classes, kind, settings) · GET /trainings · GET /trainings/{training_id} (steps in
plain words) · GET /trainings/{training_id}/report (metrics, ROC, histogram, example heatmaps, the
test images the model got wrong) · POST /trainings/{training_id}/approval and
POST /versions/{kind}/{number}/approval (approve or reject with a reason) · GET /versions ·
POST /trials, GET /trials, GET /trials/{trial_id} (a version run on new images before approval).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, Field

import model_versions
from api_core import ApiError, json_body, logger, validated
from class_datasets import MIN_GOOD_IMAGES, check_name, checked_image
from endpoint_client import model_kinds, modality_of
from kind_settings import checked_settings
from routes_datasets import dataset_store
from trainings import ACTIVE, TrainingRecords, launcher_from_environment, with_plain_steps
from trials import MAX_TRIAL_IMAGES, Trials
from trials import launcher_from_environment as trial_launcher

router = APIGatewayRouter()
MAX_PLOT_BYTES = 1_500_000


def created(body: dict) -> Response:
    return Response(201, content_types.APPLICATION_JSON, json.dumps(body))


def records() -> TrainingRecords:
    return TrainingRecords(dataset_store().store)


def check_image_kind(kind: str) -> str:
    if kind not in model_kinds():
        raise ApiError(404, "unknown_model", f"unknown model {kind!r}; choose one of {list(model_kinds())}")
    if modality_of(kind) != "image":
        raise ApiError(400, "bad_request", f"{kind} is a sensor model; datasets and trainings here are for images")
    return kind


# ------------------------------------------------------------------------------ trainings


class TrainingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    classes: list[str] = Field(min_length=1, max_length=20)
    kind: str = Field(default="patchcore", min_length=1, max_length=40)
    #: each value judged against the kind's settings (kind_settings.py): text, a number or true/false
    settings: dict[str, Any] = Field(default_factory=dict, max_length=30)
    gate: float | None = Field(default=None, ge=0, le=1, description="the quality gate (the kind's gate metric, e.g. "
                                                                     "mean image AUROC); unset: the pipeline's default")


def refreshed(record: dict) -> dict:
    """The record with SageMaker's latest word on its execution (AWS). Locally the worker writes the
    record itself, and the API never writes it back (a stale copy would undo the worker's progress)."""
    launcher = launcher_from_environment()
    if launcher.backend != "local" and record.get("backend") == launcher.backend and record["status"] in ACTIVE:
        record = records().save(launcher.refresh(record))
    return record


@router.post("/trainings")
def start_training():
    request = validated(TrainingRequest, json_body(router.current_event))
    kind = check_image_kind(request.kind)
    for key in request.settings:
        check_name(key, "setting")
    settings = checked_settings(kind, request.settings)  # before anything is looked at or started
    data = dataset_store()
    known = set(data.classes())
    for name in request.classes:
        check_name(name)
        if name not in known:
            raise ApiError(404, "unknown_class", f"there is no dataset for class {name!r}; upload images first")
    if len(set(request.classes)) != len(request.classes):
        raise ApiError(400, "bad_request", "a class is listed twice")
    for name in request.classes:
        summary = data.summary(name)
        if summary["train_good"] < MIN_GOOD_IMAGES:
            raise ApiError(400, "too_few_images", f"class {name!r} has {summary['train_good']} good training images; "
                                                  f"a training needs at least {MIN_GOOD_IMAGES}")
        if summary["test_anomalous"] == 0 or summary["test_good"] == 0:
            raise ApiError(400, "too_few_images", f"class {name!r} needs good and anomalous test images to be evaluated "
                                                  f"(has {summary['test_good']} good, {summary['test_anomalous']} anomalous)")
    store = records()
    # One training per class at a time: the second is refused, not queued, so nobody waits on a
    # training they did not mean to start after the first.
    for record in store.all():
        if record["status"] in ACTIVE and set(record["classes"]) & set(request.classes):
            record = refreshed(record)
            if record["status"] in ACTIVE:
                busy = ", ".join(sorted(set(record["classes"]) & set(request.classes)))
                raise ApiError(409, "training_running", f"training {record['id']} of {busy} is still running ({record['status']}); "
                                                        "wait for it to end")
    snapshot = data.snapshot(request.classes)
    launcher = launcher_from_environment()
    record = store.new(request.classes, kind, settings, snapshot, launcher.backend)
    if request.gate is not None:
        record["gate"] = request.gate
    record = store.save(launcher.start(record))
    for name in request.classes:
        data.mark_trained(name, snapshot["snapshot"])
    logger.info("training started", extra={"training": record["id"], "snapshot": snapshot["snapshot"]})
    return created(with_plain_steps(record))


@router.get("/trainings")
def list_trainings():
    return {"trainings": [with_plain_steps(refreshed(r)) for r in records().all()[:50]]}


@router.get("/trainings/<training_id>")
def describe_training(training_id: str):
    return with_plain_steps(refreshed(records().get(training_id)))


def read_location(location: str) -> bytes | None:
    if location.startswith("s3://"):
        import boto3

        bucket, _, key = location[5:].partition("/")
        try:
            return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except boto3.client("s3").exceptions.NoSuchKey:
            return None
    path = Path(location)
    return path.read_bytes() if path.is_file() else None


def evaluation_location(record: dict) -> str | None:
    if record.get("evaluation_uri"):
        return record["evaluation_uri"]
    if record.get("registered_version"):  # on AWS: the evaluation the version's model metrics point at
        group, number = record["registered_version"].rsplit("/", 1)
        version = model_versions.from_environment().get(group, int(number))
        return ((version.get("metrics") or {}).get("ModelQuality", {}).get("Statistics", {}) or {}).get("S3Uri")
    return None


@router.get("/trainings/<training_id>/report")
def training_report(training_id: str):
    record = refreshed(records().get(training_id))
    location = evaluation_location(record)
    if record["status"] in ACTIVE or not location:
        reason = record.get("failure_reason") or f"the training is {record['status'].lower()}"
        raise ApiError(409, "no_report", f"training {training_id} has no evaluation report yet: {reason}")
    text = read_location(location)
    if text is None:
        raise ApiError(404, "no_report", f"the evaluation of training {training_id} is gone from {location}")
    evaluation = json.loads(text)
    folder = location.rsplit("/", 1)[0]
    classes = {}
    for name, metrics in evaluation["classes"].items():
        plots = {}
        for plot in ("roc", "histogram", "examples"):
            data = read_location(f"{folder}/{plot}_{name}.png")
            plots[plot] = base64.b64encode(data).decode() if data and len(data) <= MAX_PLOT_BYTES else None
        wrong = [{**item, "image_id": Path(item["image"]).stem} for item in metrics.get("misclassified", [])]
        classes[name] = {"metrics": {k: v for k, v in metrics.items() if k not in ("problems", "misclassified")},
                         "wrong": wrong, "problems": metrics.get("problems", [])[:50], "plots_png_base64": plots}
    return {"training": with_plain_steps(record), "split": evaluation.get("split"), "mean": evaluation.get("mean"),
            "quality_gate": evaluation.get("quality_gate"), "classes": classes}


# ------------------------------------------------------------------------------- approval


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    reason: str = Field(min_length=3, max_length=1000, description="why: the registry keeps it with the decision")
    by: str = Field(default="api", min_length=1, max_length=80)


def decider(request: ApprovalRequest) -> str:
    """Who decides: the signed-in person; on the open local stack, the name the request gives."""
    from access import caller_name

    name = caller_name(router.current_event.raw_event)
    return request.by if name == "local" else name


def decide(group: str, number: int, request: ApprovalRequest) -> dict:
    status = model_versions.APPROVED if request.decision == "approve" else model_versions.REJECTED
    request.by = decider(request)
    version = model_versions.from_environment().set_status(group, number, status, request.reason.strip(), request.by)
    logger.info("model version decided", extra={"version": version["id"], "status": status})
    return version


@router.post("/trainings/<training_id>/approval")
def approve_training(training_id: str):
    request = validated(ApprovalRequest, json_body(router.current_event))
    record = refreshed(records().get(training_id))
    if record["status"] == "Failed":
        raise ApiError(409, "training_failed", f"training {training_id} failed, so it has no version to "
                                               f"{request.decision}: {record.get('failure_reason', 'see its steps')}")
    if record["status"] != "Succeeded" or not record.get("registered_version"):
        raise ApiError(409, "training_not_done", f"training {training_id} is {record['status'].lower()}; "
                                                 "its version can be decided once it has succeeded")
    group, number = record["registered_version"].rsplit("/", 1)
    version = decide(group, int(number), request)
    record.setdefault("decisions", []).append({"decision": request.decision, "reason": request.reason, "by": request.by,
                                               "at": version["history"][-1]["at"]})
    records().save(record)
    return {"training": training_id, "version": version}


def _group(kind: str) -> str:
    return model_versions.group_of(check_image_kind(kind))


@router.post("/versions/<kind>/<number>/approval")
def approve_version(kind: str, number: str):
    if not number.isdigit():
        raise ApiError(400, "bad_request", "the version number must be a positive integer")
    request = validated(ApprovalRequest, json_body(router.current_event))
    group = _group(kind)
    failed = [r for r in records().all() if r.get("registered_version") == f"{group}/{number}" and r["status"] == "Failed"]
    if failed:
        raise ApiError(409, "training_failed", f"the training of {group}/{number} failed: {failed[0].get('failure_reason')}")
    return {"version": decide(group, int(number), request)}


@router.get("/versions")
def list_versions():
    kind = (router.current_event.query_string_parameters or {}).get("kind") or "patchcore"
    versions = model_versions.from_environment().list(_group(kind))
    return {"kind": kind, "versions": [{k: v for k, v in version.items() if k != "metrics"} | {
        "metrics": (version.get("metrics") or {}).get("mean", version.get("metrics"))} for version in reversed(versions)]}


# ---------------------------------------------------------------------------------- trials


class TrialImage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    image_base64: str = Field(min_length=1)


class TrialRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=40)
    version: int = Field(ge=1)
    class_name: str = Field(min_length=1, max_length=64)
    images: list[TrialImage] = Field(min_length=1)


@router.post("/trials")
def start_trial():
    request = validated(TrialRequest, json_body(router.current_event))
    if len(request.images) > MAX_TRIAL_IMAGES:
        raise ApiError(413, "payload_too_large", f"a trial holds at most {MAX_TRIAL_IMAGES} images, got {len(request.images)}")
    check_name(request.class_name)
    group = _group(request.kind)
    version = model_versions.from_environment().get(group, request.version)
    classes = str((version.get("metadata") or {}).get("classes", "")).split(",")
    if request.class_name not in classes:
        raise ApiError(404, "unknown_class", f"{version['id']} was trained on {', '.join(classes)}, not {request.class_name!r}")
    images = []
    for item in request.images:
        try:
            data = base64.b64decode(item.image_base64.split(",", 1)[-1] if item.image_base64.startswith("data:") else item.image_base64,
                                    validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "bad_request", f"{item.name}: image_base64 is not valid base64") from None
        images.append((item.name, data, checked_image(data, item.name)[0]))
    trials, launcher = Trials(dataset_store().store), trial_launcher()
    trial = trials.create(version, request.kind, request.class_name, images, launcher.backend)
    # a trial SageMaker refuses to start is saved Failed with the reason answered here (Trials.start)
    return created(trials.start(trial, launcher.start) if launcher.backend != "local" else trial)


def trial_refreshed(trial: dict) -> dict:
    launcher = trial_launcher()  # as for trainings: locally only the worker writes the record
    if launcher.backend != "local" and trial.get("backend") == launcher.backend and trial["status"] in ("Queued", "Executing"):
        before = trial["status"]
        trial = launcher.refresh(trial)
        if trial["status"] != before:
            Trials(dataset_store().store).save(trial)
    return trial


@router.get("/trials")
def list_trials():
    return {"trials": [{k: v for k, v in t.items() if k != "results"} | {"results": len(t.get("results", []))}
                       for t in Trials(dataset_store().store).all()[:50]]}


@router.get("/trials/<trial_id>")
def describe_trial(trial_id: str):
    return trial_refreshed(Trials(dataset_store().store).get(trial_id))


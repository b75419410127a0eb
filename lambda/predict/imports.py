"""Detector imports started from the API: a record per import in the store, its uploaded files, and
the job that checks, evaluates and registers the detector.

    datasets/imports/<id>.json               the record (status, files, choices, result or failure)
    datasets/imports/<id>/graph.onnx         the detector, uploaded with a presigned form
    datasets/imports/<id>/names.yaml|.txt    its class names (optional: else the graph's metadata)
    datasets/imports/<id>/labelled.zip       a labelled YOLO set to evaluate it on (optional)

The job is `pipelines.detector.job`, which runs `pipelines.detector.importer` — the code behind
`ivadas models import` — so the browser gets the command line's checks and messages word for word.
Locally the local stack's worker runs it (`import_local`); on AWS it is a SageMaker Processing job
of the training image, run as the pipeline's role, that uploads the bundle to the artifacts bucket
and registers it in the Model Registry (`import_aws`). Whatever the outcome, the uploaded files are
removed once the job has ended (a registered version keeps its own copy of the graph in its bundle).

An import SageMaker refuses to start (its quota of processing jobs used up, a role it cannot assume)
is Failed with that reason but keeps its files and is `retryable`: POST /models/import with the same
import_id starts it again without sending the files again. Files nobody retries with go an hour
after the refusal, as those of an import that was never started do.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import PurePosixPath

import processing_jobs
from api_core import ApiError
from class_datasets import (DOCUMENT_SUFFIXES, IMAGE_SUFFIXES, MAX_IMAGE_FILE_BYTES, MAX_ZIP_BYTES, YAML_SUFFIXES, _limit,
                            _members, _read_member, checked_image, now, open_zip)
from job_records import JobRecords, seconds_since

IMPORTS = "datasets/imports"  # everything the API writes to the data bucket is under datasets/
ACTIVE = ("Uploading", "Queued", "Executing")
#: The largest Ultralytics exports (YOLOv8x, YOLO11x at 640 px) are 220-280 MB.
MAX_GRAPH_BYTES = _limit("IMPORT_MAX_GRAPH_BYTES", 400 * 1024 * 1024)
MAX_NAMES_BYTES = _limit("IMPORT_MAX_NAMES_BYTES", 1024 * 1024)
NAMES_SUFFIXES = (".yaml", ".yml", ".txt", ".names")
#: A label file is a few lines per image; more than this is not one.
MAX_LABEL_BYTES = 1024 * 1024
#: Upload forms expire after 15 minutes (uploads.EXPIRES_S); an import still waiting for its files
#: an hour later never gets them
ABANDONED_AFTER_S = 3600
WORDS = processing_jobs.JobWords(what="the import", refused="import_unavailable", exists="import_job_exists",
                                 limit_reached="import_limit_reached")


def file_key(import_id: str, role: str, filename: str = "") -> str:
    """Where an uploaded file of the import lives; the names file keeps its YAML-or-lines suffix,
    which is how the importer tells a `data.yaml` from a one-name-per-line file."""
    if role == "graph":
        return f"{IMPORTS}/{import_id}/graph.onnx"
    if role == "names":
        suffix = ".yaml" if PurePosixPath(filename).suffix.lower() in YAML_SUFFIXES else ".txt"
        return f"{IMPORTS}/{import_id}/names{suffix}"
    return f"{IMPORTS}/{import_id}/labelled.zip"


def limit_of(role: str) -> int:
    return {"graph": MAX_GRAPH_BYTES, "names": MAX_NAMES_BYTES, "labelled": MAX_ZIP_BYTES}[role]


def check_file(role: str, filename: str, size: int) -> None:
    """A file the browser is about to send: the right kind by its name, within its limit."""
    suffix = PurePosixPath(filename).suffix.lower()
    expected = {"graph": (".onnx",), "names": NAMES_SUFFIXES, "labelled": (".zip",)}[role]
    what = {"graph": "the detector", "names": "the names file", "labelled": "the labelled set"}[role]
    if suffix not in expected:
        raise ApiError(415, "unsupported_media_type", f"{what} must be a {' or '.join(expected)} file, not {filename!r}")
    if size > limit_of(role):
        raise ApiError(413, "payload_too_large", f"{filename} is {size} bytes; {what} may have at most {limit_of(role)}")


class ImportRecords(JobRecords):
    folder, noun, not_an_id = IMPORTS, "import", "not an import id"

    def new(self, files: dict, by: str) -> dict:
        import_id = now()[:19].replace(":", "").replace("-", "") + "-" + uuid.uuid4().hex[:8]
        return {"id": import_id, "status": "Uploading", "created_at": now(), "by": by,
                "files": {role: {**spec, "key": file_key(import_id, role, spec["filename"])} for role, spec in files.items()}}

    def missing_files(self, record: dict) -> list[str]:
        return [spec["filename"] for spec in record["files"].values() if not self.store.exists(spec["key"])]

    def remove_files(self, record: dict) -> None:
        """The uploads go once the job has ended, registered or refused."""
        for spec in record["files"].values():
            self.store.delete(spec["key"])

    def refused(self, record: dict, error: ApiError) -> dict:
        """Nothing ran: the uploads stay, so the import can be started again as it is."""
        record["retryable"] = True
        return super().refused(record, error)


def startable(record: dict) -> bool:
    """An import not started yet (its files may still be on their way), whose start SageMaker refused,
    or whose start never answered (Queued with no job on AWS: asked again, it finds its job if there is one)."""
    unanswered = record["status"] == "Queued" and record.get("backend", "local") != "local" and not record.get("job_name")
    return record["status"] == "Uploading" or bool(record.get("retryable")) or unanswered


def abandoned(record: dict, at: datetime | None = None) -> bool:
    """An import whose files never all arrived (its upload forms expired long ago), or whose refused
    start nobody retried within the same hour."""
    if record["status"] == "Uploading":
        since = record["created_at"]
    elif record.get("retryable"):
        since = record["ended_at"]
    else:
        return False
    return seconds_since(since, at) > ABANDONED_AFTER_S


def sweep_abandoned(records: ImportRecords) -> None:
    """Uploads nobody started an import with do not stay in the bucket."""
    for record in records.all():
        if not abandoned(record):
            continue
        if record["status"] == "Uploading":
            finish(records, record, None, "the import was never started: its files did not all arrive before the upload "
                                          "forms expired; upload them again")
        else:
            record["retryable"] = False
            finish(records, record, None, f"{record['failure_reason']}; nobody started it again within the hour, so its "
                                          "files were removed: upload them again")


def finish(records: ImportRecords, record: dict, result: dict | None, failure: str | None) -> dict:
    """Write the job's outcome into the record and drop the uploads."""
    if failure is not None:
        record.update(status="Failed", failure_reason=failure, ended_at=now())
    else:
        record.update(status="Succeeded", registered_version=result["version"], version_status=result["status"],
                      model_url=result["model_url"], detector=result["detector"], evaluation=result.get("evaluation"),
                      ended_at=now())
    records.remove_files(record)
    return records.save(record)


# ------------------------------------------------------------------------- the labelled set


def check_labelled_zip(data: bytes) -> dict:
    """The dataset zip checks (size, zip bombs, paths leaving the zip, symbolic links) and what a YOLO
    set may hold: images (their headers read), `.txt` label files, a YAML and documents. Boxes and
    class ids are the importer's to judge, against the detector's classes."""
    archive = open_zip(data)
    images, labels = 0, 0
    for info, path in _members(archive):
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            checked_image(_read_member(archive, info, MAX_IMAGE_FILE_BYTES), str(path))
            images += 1
        elif suffix == ".txt":
            _read_member(archive, info, MAX_LABEL_BYTES)
            labels += 1
        elif suffix not in YAML_SUFFIXES and suffix not in DOCUMENT_SUFFIXES:
            raise ApiError(415, "not_an_image", f"{path} is neither an image nor a YOLO label file; a labelled set holds "
                                                "images and their .txt boxes")
    if not images:
        raise ApiError(400, "no_images", "the labelled set holds no images (PNG, JPEG, BMP, TIFF or WebP)")
    return {"images": images, "label_files": labels}


# ----------------------------------------------------------------------------- launchers


class LocalImports:
    """Queue the import for the local stack's worker, which runs `import_local`."""

    backend = "local"

    def start(self, record: dict) -> dict:
        return record

    def refresh(self, record: dict, records: ImportRecords) -> dict:
        return record  # the worker writes the outcome into the record itself


class SageMakerImports:
    """A SageMaker Processing job per import: the training image runs `pipelines.detector.job` on the
    uploaded files (the data bucket's `datasets/imports/<id>/`), as the pipeline's role, which uploads
    the bundle to the artifacts bucket and registers the version; `result.json` comes back under
    `pipelines/<name>/import-jobs/<id>/`, where the API reads reports already."""

    backend = "sagemaker"
    INSTANCE_TYPE = os.environ.get("IMPORT_INSTANCE_TYPE", "ml.m5.large")
    INPUT = "/opt/ml/processing/input"
    OUTPUT = "/opt/ml/processing/output"

    def __init__(self, pipeline: str, data_uri: str, artifacts_bucket: str, image_uri: str, inference_image_uri: str,
                 role_arn: str, region: str | None = None, client=None, s3=None):
        import boto3

        self.pipeline, self.data_uri = pipeline, data_uri.rstrip("/")
        self.artifacts_bucket, self.image_uri, self.inference_image_uri = artifacts_bucket, image_uri, inference_image_uri
        self.role_arn, self.region = role_arn, region
        self.client = client or boto3.client("sagemaker")
        self.s3 = s3 or boto3.client("s3")

    def job_name(self, record: dict) -> str:
        """`<pipeline>-import-<id>`: the API's role may start and read jobs of this prefix only."""
        return processing_jobs.job_name(f"{self.pipeline}-import-", record["id"])

    def result_key(self, record: dict) -> str:
        return f"pipelines/{self.pipeline}/import-jobs/{record['id']}/result.json"

    def arguments(self, record: dict) -> list[str]:
        arguments = ["--target", "aws", "--input", self.INPUT, "--output", self.OUTPUT, "--class", record["class_name"],
                     "--iou", str(record["iou"]), "--pipeline", self.pipeline, "--artifacts-bucket", self.artifacts_bucket,
                     "--inference-image-uri", self.inference_image_uri, "--imported-by", record["by"],
                     "--graph-name", record["files"]["graph"]["filename"]]
        for name in record["anomalous_classes"]:  # one by one: a class name may hold a comma
            arguments += ["--anomalous", name]
        if self.region:
            arguments += ["--region", self.region]
        return arguments

    def request(self, record: dict) -> dict:
        """CreateProcessingJob's request but for the job's name."""
        return {
            "RoleArn": self.role_arn,
            "AppSpecification": {"ImageUri": self.image_uri, "ContainerEntrypoint": ["python", "-m", "pipelines.detector.job"],
                                 "ContainerArguments": self.arguments(record)},
            "ProcessingInputs": [processing_jobs.s3_input("upload", f"{self.data_uri}/{IMPORTS}/{record['id']}/", self.INPUT)],
            "ProcessingOutputConfig": processing_jobs.s3_output(
                "result", f"s3://{self.artifacts_bucket}/{self.result_key(record).rsplit('/', 1)[0]}", self.OUTPUT),
            "ProcessingResources": processing_jobs.one_instance(self.INSTANCE_TYPE, 30),
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "Environment": {"IVADAS_STEP": "import"}}

    def start(self, record: dict) -> dict:
        name = processing_jobs.start(self.client, self.job_name(record), self.request(record), WORDS)
        record.update(status="Executing", job_name=name, started_at=now())
        return record

    def refresh(self, record: dict, records: ImportRecords) -> dict:
        if record.get("status") == "Queued" and not record.get("job_name"):
            return self.settle_unknown_start(record, records)
        if record.get("status") != "Executing" or not record.get("job_name"):
            return record
        return self.follow(record, records, self.client.describe_processing_job(ProcessingJobName=record["job_name"]))

    def settle_unknown_start(self, record: dict, records: ImportRecords) -> dict:
        """An import Queued with no job: the call that started it never answered (a timeout, a lost
        connection). Its job, if SageMaker started it, has the import's name; if none has once the call
        is surely over, the import is Failed but `retryable`, its files kept, instead of Queued for ever."""
        name = self.job_name(record)
        outcome, job = processing_jobs.unanswered_start(self.client, name, seconds_since(record["updated_at"]))
        if outcome == "unknown":
            return record
        if outcome == "never":
            record.update(status="Failed", retryable=True, ended_at=now(), failure_reason="the import's processing job was "
                          "never started (the request to start it did not finish); start it again")
            return records.save(record)
        record.update(status="Executing", job_name=name, started_at=job["CreationTime"].isoformat())
        return self.follow(records.save(record), records, job)

    def follow(self, record: dict, records: ImportRecords, job: dict) -> dict:
        status = job["ProcessingJobStatus"]
        if status == "Completed":
            body = self.s3.get_object(Bucket=self.artifacts_bucket, Key=self.result_key(record))["Body"].read()
            return finish(records, record, json.loads(body), None)
        if status in ("Failed", "Stopped"):
            # the job writes the importer's own message to /opt/ml/output/message: SageMaker's ExitMessage
            reason = (job.get("ExitMessage") or "").strip() or job.get("FailureReason") or f"the import job {status.lower()}"
            return finish(records, record, None, reason)
        return record


def launcher_from_environment():
    location = os.environ.get("DATASET_STORE", "")
    if location.startswith("s3://"):
        return SageMakerImports(os.environ.get("PIPELINE_NAME", "ivadas-training"), location, os.environ["ARTIFACTS_BUCKET"],
                                os.environ["IMPORT_IMAGE_URI"], os.environ["ENDPOINT_IMAGE_URI"], os.environ["IMPORT_ROLE_ARN"],
                                os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    return LocalImports()

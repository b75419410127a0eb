"""Trial detections: a model version (approved or not) run on a set of new images before anyone
approves it, the way Lookout for Vision's trial detections worked.

A trial is a record (`trials/<id>.json`) and its images (`trials/<id>/<n><ext>`) in the store.
Locally the local stack's worker scores them with the version's bundle, through the same model code
the endpoints run, and writes each verdict (score, threshold, heatmap) into the record. Results can
then be marked right or wrong (POST /feedback with trial_id and index). On AWS a SageMaker Processing
job scores them; one SageMaker refuses to start leaves the trial Failed with its reason (JobRecords.start).
"""

from __future__ import annotations

import json
import os
import uuid

import processing_jobs
from api_core import ApiError
from class_datasets import now
from image_header import EXTENSIONS
from job_records import JobRecords, seconds_since

TRIALS = "datasets/trials"
MAX_TRIAL_IMAGES = 20
WORDS = processing_jobs.JobWords(what="the trial", refused="trial_unavailable", exists="trial_job_exists",
                                 limit_reached="trial_limit_reached")


class Trials(JobRecords):
    folder, noun, not_an_id = TRIALS, "trial", "trial_id is not a trial's id"

    def check_id(self, trial_id: str) -> None:
        """A trial's id is a uuid4's 32 hex digits (the feedback form names one, `trial_id`)."""
        if not (trial_id or "").isalnum() or len(trial_id) != 32:
            raise ApiError(400, "bad_request", self.not_an_id)

    def create(self, version: dict, kind: str, class_name: str, images: list[tuple[str, bytes, str]], backend: str = "local") -> dict:
        trial_id = uuid.uuid4().hex
        entries = []
        for index, (name, data, image_format) in enumerate(images):
            key = f"{TRIALS}/{trial_id}/{index}{EXTENSIONS[image_format]}"
            self.store.put(key, data)
            entries.append({"name": name, "key": key})
        record = {"id": trial_id, "version": version["id"], "version_status": version["status"], "kind": kind,
                  "class_name": class_name, "model_url": version["model_url"], "images": entries, "status": "Queued", "backend": backend,
                  "created_at": now(), "results": []}
        return self.save(record)

    def image(self, trial_id: str, index: int) -> bytes:
        return self.store.get(self.get(trial_id)["images"][index]["key"])


def run_trial(trials: Trials, record: dict, load_model, score_images) -> dict:
    """Score every image of the trial locally with `load_model(model_url)` and `score_images`
    (`pipelines.steps.trial`, what the Processing job runs on AWS)."""
    record.update(status="Executing", started_at=now())
    trials.save(record)
    try:
        model = load_model(record["model_url"])
    except Exception as exc:  # the version's bundle cannot be loaded: the whole trial fails, in words
        record.update(status="Failed", failure_reason=f"the model version could not be loaded: {exc}", ended_at=now())
        return trials.save(record)
    try:
        images = [(entry["name"], trials.store.get(entry["key"])) for entry in record["images"]]
        results = score_images(model, record["class_name"], images)
    except Exception as exc:  # the trial ends Failed, in words; the worker goes on with the next job
        record.update(status="Failed", failure_reason=f"the trial's images could not be scored: {exc}", ended_at=now())
        return trials.save(record)
    record.update(status="Succeeded", results=results, ended_at=now())
    return trials.save(record)


class LocalTrials:
    """The local stack's worker picks up Queued trials."""

    backend = "local"

    def start(self, record: dict) -> dict:
        return record

    def refresh(self, record: dict) -> dict:
        return record


class SageMakerTrials:
    """A SageMaker Processing job per trial: the training image runs `pipelines.steps.trial` on the
    version's model.tar.gz and the trial's images, as the pipeline's role, and writes results.json
    under `trials/<id>/` of the artifacts bucket."""

    backend = "sagemaker"
    INSTANCE_TYPE = os.environ.get("TRIAL_INSTANCE_TYPE", "ml.m5.large")

    def __init__(self, prefix: str, data_uri: str, artifacts_bucket: str, image_uri: str, role_arn: str, client=None, s3=None):
        import boto3

        self.prefix, self.data_uri = prefix, data_uri.rstrip("/")
        self.artifacts_bucket, self.image_uri, self.role_arn = artifacts_bucket, image_uri, role_arn
        self.client = client or boto3.client("sagemaker")
        self.s3 = s3 or boto3.client("s3")

    def job_name(self, record: dict) -> str:
        """`<pipeline>-trial-<id>`: the API's role may start and read jobs of this prefix only. 24 of the
        id's 32 hex digits fit with the longest environment name, and keep trials apart."""
        return processing_jobs.job_name(f"{self.prefix}-trial-", record["id"][:24])

    def results_key(self, record: dict) -> str:
        return f"trials/{record['id']}/results.json"

    def request(self, record: dict) -> dict:
        """CreateProcessingJob's request but for the job's name."""
        images = f"{self.data_uri}/{TRIALS}/{record['id']}/"
        return {
            "RoleArn": self.role_arn,
            "AppSpecification": {"ImageUri": self.image_uri, "ContainerEntrypoint": ["python", "-m", "pipelines.steps.trial"],
                                 "ContainerArguments": ["--class-name", record["class_name"]]},
            "ProcessingInputs": [processing_jobs.s3_input("model", record["model_url"], "/opt/ml/processing/model"),
                                 processing_jobs.s3_input("images", images, "/opt/ml/processing/images")],
            "ProcessingOutputConfig": processing_jobs.s3_output("results", f"s3://{self.artifacts_bucket}/trials/{record['id']}",
                                                                "/opt/ml/processing/output"),
            "ProcessingResources": processing_jobs.one_instance(self.INSTANCE_TYPE, 10),
            "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
            "Environment": {"IVADAS_STEP": "trial"}}

    def start(self, record: dict) -> dict:
        name = processing_jobs.start(self.client, self.job_name(record), self.request(record), WORDS)
        record.update(status="Executing", job_name=name, started_at=now())
        return record

    def refresh(self, record: dict) -> dict:
        if record.get("status") not in ("Queued", "Executing"):
            return record
        if not record.get("job_name"):
            return self.settle_unknown_start(record)
        return self.follow(record, self.client.describe_processing_job(ProcessingJobName=record["job_name"]))

    def settle_unknown_start(self, record: dict) -> dict:
        """A trial Queued with no job: the call that started it never answered (a timeout, a lost
        connection). Its job, if SageMaker started it, has the trial's name; if none has, the trial is
        Failed once the call is surely over, instead of Queued for ever."""
        name = self.job_name(record)
        outcome, job = processing_jobs.unanswered_start(self.client, name, seconds_since(record["created_at"]))
        if outcome == "unknown":
            return record
        if outcome == "never":
            record.update(status="Failed", ended_at=now(), failure_reason="the trial's processing job was never started (the "
                          "request to start it did not finish); run the trial again")
            return record
        record.update(status="Executing", job_name=name, started_at=job["CreationTime"].isoformat())
        return self.follow(record, job)

    def follow(self, record: dict, job: dict) -> dict:
        status = job["ProcessingJobStatus"]
        if status == "Completed":
            body = self.s3.get_object(Bucket=self.artifacts_bucket, Key=self.results_key(record))["Body"].read()
            record.update(status="Succeeded", results=json.loads(body)["results"], ended_at=now())
        elif status in ("Failed", "Stopped"):
            record.update(status="Failed", ended_at=now(),
                          failure_reason=job.get("FailureReason") or f"the trial's processing job {status.lower()}")
        return record


def launcher_from_environment():
    location = os.environ.get("DATASET_STORE", "")
    if location.startswith("s3://"):
        return SageMakerTrials(os.environ.get("PIPELINE_NAME", "ivadas-training"), location, os.environ["ARTIFACTS_BUCKET"],
                               os.environ["TRIAL_IMAGE_URI"], os.environ["TRIAL_ROLE_ARN"])
    return LocalTrials()

"""Trainings started from the API: a record per training in the store (`trainings/<id>.json`), and
the pipeline that runs it.

On AWS the record names a SageMaker pipeline execution (StartPipelineExecution with the dataset
snapshot as DataUri/DataSnapshot); its steps and failure reasons come from SageMaker. Locally the
record is queued and the local stack's training worker (`infra/local/training_worker.py`) runs the
local pipeline, writing the steps into the record as they start and end.
"""

from __future__ import annotations

import json
import os
import uuid

from api_core import ApiError
from class_datasets import now
from job_records import JobRecords

TRAININGS = "datasets/trainings"  # everything the API writes to the data bucket is under datasets/
ACTIVE = ("Queued", "Executing", "Stopping")
STEP_ORDER = ("Preprocess", "Train", "Evaluate", "QualityGate", "Register")
#: What each step does, for people who never saw a pipeline.
STEP_WORDS = {
    "Preprocess": "checking the images and splitting them for training, threshold and evaluation",
    "Train": "learning what good images look like",
    "Evaluate": "scoring the held-out test images",
    "QualityGate": "comparing the evaluation with the quality gate",
    "QualityGateFailed": "the model did not pass the quality gate",
    "Register": "registering the model version for review",
}


class TrainingRecords(JobRecords):
    folder, noun, not_an_id = TRAININGS, "training", "not a training id"

    def new(self, classes: list[str], kind: str, settings: dict, snapshot: dict, backend: str) -> dict:
        return {"id": now()[:19].replace(":", "").replace("-", "") + "-" + uuid.uuid4().hex[:8], "classes": classes,
                "kind": kind, "settings": settings, "snapshot": snapshot["snapshot"], "data_key": snapshot["key"],
                "status": "Queued", "created_at": now(), "steps": [], "backend": backend}


def with_plain_steps(record: dict) -> dict:
    """The record with every pipeline step listed in order, each with what it does in plain words."""
    known = {s["name"]: s for s in record.get("steps", [])}
    steps = []
    for name in STEP_ORDER + tuple(n for n in known if n not in STEP_ORDER):
        step = {"name": name, "status": "NotStarted", **known.get(name, {})}
        step["what"] = STEP_WORDS.get(name, "")
        steps.append(step)
    done = sum(s["status"] == "Succeeded" for s in steps if s["name"] in STEP_ORDER)
    return {**record, "steps": steps, "progress": round(done / len(STEP_ORDER), 2)}


class LocalLauncher:
    """Queue the training for the local stack's training worker."""

    backend = "local"

    def __init__(self, store_root: str):
        self.store_root = store_root

    def data_uri(self, snapshot_key: str) -> str:
        return os.path.join(self.store_root, snapshot_key)

    def start(self, record: dict) -> dict:
        record["data_uri"] = self.data_uri(record["data_key"])
        return record  # the worker picks up Queued records, oldest first

    def refresh(self, record: dict) -> dict:
        return record  # the worker writes progress into the record itself


class SageMakerLauncher:
    """StartPipelineExecution of the deployed pipeline; steps from ListPipelineExecutionSteps."""

    backend = "sagemaker"
    STATUS = {"Executing": "Executing", "Stopping": "Stopping", "Stopped": "Stopped", "Failed": "Failed",
              "Succeeded": "Succeeded"}

    def __init__(self, pipeline: str, bucket_uri: str, client=None):
        import boto3

        self.pipeline, self.bucket_uri = pipeline, bucket_uri.rstrip("/")
        self.client = client or boto3.client("sagemaker")

    def data_uri(self, snapshot_key: str) -> str:
        return f"{self.bucket_uri}/{snapshot_key}"

    def start(self, record: dict) -> dict:
        record["data_uri"] = self.data_uri(record["data_key"])
        parameters = {"DataUri": record["data_uri"], "DataSnapshot": record["snapshot"], "Classes": ",".join(record["classes"]),
                      "ModelKind": record["kind"], "KindSettings": json.dumps(record["settings"], sort_keys=True)}
        if record.get("gate") is not None:
            parameters["AurocGate"] = str(record["gate"])
        try:
            started = self.client.start_pipeline_execution(
                PipelineName=self.pipeline, ClientRequestToken=uuid.uuid5(uuid.NAMESPACE_URL, record["id"]).hex,
                PipelineExecutionDisplayName=f"api-{record['id']}"[:82],
                PipelineExecutionDescription=f"classes {', '.join(record['classes'])} from snapshot {record['snapshot']}",
                PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()])
        except self.client.exceptions.ClientError as exc:
            error = exc.response["Error"]
            raise ApiError(502, "pipeline_unavailable", f"SageMaker refused to start the pipeline: {error.get('Message', error['Code'])}") from None
        record.update(execution_arn=started["PipelineExecutionArn"], status="Executing")
        return record

    def refresh(self, record: dict) -> dict:
        if record.get("status") not in ACTIVE or not record.get("execution_arn"):
            return record
        arn = record["execution_arn"]
        execution = self.client.describe_pipeline_execution(PipelineExecutionArn=arn)
        steps = []
        for page in self.client.get_paginator("list_pipeline_execution_steps").paginate(PipelineExecutionArn=arn, SortOrder="Ascending"):
            for step in page["PipelineExecutionSteps"]:
                entry = {"name": step["StepName"], "status": step["StepStatus"]}
                if step.get("FailureReason"):
                    entry["failure_reason"] = step["FailureReason"]
                if step.get("StartTime") and step.get("EndTime"):
                    entry["seconds"] = round((step["EndTime"] - step["StartTime"]).total_seconds(), 1)
                package = (step.get("Metadata") or {}).get("RegisterModel", {}).get("Arn")
                if package:
                    group, number = package.split(":model-package/")[-1].rsplit("/", 1)
                    entry["model_version"] = record["registered_version"] = f"{group}/{number}"
                steps.append(entry)
        record["steps"] = steps
        record["status"] = self.STATUS.get(execution["PipelineExecutionStatus"], execution["PipelineExecutionStatus"])
        if record["status"] == "Failed":
            failed = [s for s in steps if s.get("failure_reason")]
            record["failure_reason"] = failed[-1]["failure_reason"] if failed else execution.get("FailureReason", "the pipeline failed")
        return record


def launcher_from_environment():
    location = os.environ.get("DATASET_STORE", "")
    if location.startswith("s3://"):
        return SageMakerLauncher(os.environ.get("PIPELINE_NAME", "ivadas-training"), location)
    return LocalLauncher(location)

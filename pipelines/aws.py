"""The deployed SageMaker Pipeline from the command line: upsert (development), start, status."""

from __future__ import annotations

import hashlib
import json

from .definition import UNKNOWN_SNAPSHOT, PipelineSettings, definition_json

SNAPSHOT_PARAMETER = "DataSnapshot"


def _client(service: str = "sagemaker", region: str | None = None):
    import boto3

    return boto3.client(service, region_name=region)


def upsert(settings: PipelineSettings, client=None) -> str:
    """Create or update the pipeline with this definition; returns its ARN."""
    client = client or _client(region=settings.region)
    request = {
        "PipelineName": settings.name,
        "PipelineDefinition": definition_json(settings),
        "RoleArn": settings.role_arn,
        "PipelineDescription": "IVADAS: preprocess, train, evaluate, gate, register",
    }
    from botocore.exceptions import ClientError

    try:
        client.describe_pipeline(PipelineName=settings.name)
    except ClientError:  # not there yet
        return client.create_pipeline(**request, PipelineDisplayName=settings.name)["PipelineArn"]
    return client.update_pipeline(**request)["PipelineArn"]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → (`bucket`, `some/prefix/`)."""
    bucket, _, prefix = uri[5:].partition("/") if uri.startswith("s3://") else ("", "", "")
    if not bucket:
        raise ValueError(f"{uri!r} is not an s3:// URI; the SageMaker pipeline reads its data from S3")
    return bucket, (prefix.rstrip("/") + "/") if prefix else ""


def data_snapshot(s3, data_uri: str, classes: list[str] | None = None) -> str:
    """Content hash of the objects a run reads: every key (relative to the data URI), size and ETag
    under the classes' folders (or the whole prefix). The same files give the same hash; a changed,
    added or removed file gives another, and with it a step-cache miss."""
    bucket, prefix = split_s3_uri(data_uri)
    folders = [f"{prefix}{name}/" for name in classes] if classes else [prefix]
    entries = []
    for folder in folders:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
            entries += [(o["Key"][len(prefix):], o["Size"], o["ETag"]) for o in page.get("Contents", [])]
    if not entries:
        raise ValueError(f"no data under {data_uri} for {', '.join(classes) if classes else 'any class'}")
    return hashlib.sha256(json.dumps(sorted(entries)).encode()).hexdigest()[:20]


def _default_parameter(client, name: str, parameter: str) -> str | None:
    definition = json.loads(client.describe_pipeline(PipelineName=name)["PipelineDefinition"])
    return next((p.get("DefaultValue") for p in definition.get("Parameters", []) if p["Name"] == parameter), None)


def start(name: str, parameters: dict[str, str], client=None, region: str | None = None, s3=None) -> str:
    """Start an execution; parameters are the definition's names (DataUri, Classes, ModelKind, ...).

    Unless given, DataSnapshot is computed from the S3 data the run will read, so that step caching
    reuses a step only for the same data."""
    client = client or _client(region=region)
    parameters = {k: v for k, v in parameters.items() if v is not None}
    if parameters.get(SNAPSHOT_PARAMETER) in (None, "", UNKNOWN_SNAPSHOT):
        data_uri = parameters.get("DataUri") or _default_parameter(client, name, "DataUri")
        classes = parameters.get("Classes") or _default_parameter(client, name, "Classes") or ""
        parameters[SNAPSHOT_PARAMETER] = data_snapshot(s3 or _client("s3", region), data_uri,
                                                       [c for c in classes.split(",") if c])
    response = client.start_pipeline_execution(
        PipelineName=name,
        PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in parameters.items()],
    )
    return response["PipelineExecutionArn"]


def status(execution_arn: str, client=None, region: str | None = None) -> dict:
    client = client or _client(region=region)
    execution = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
    steps = client.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn).get("PipelineExecutionSteps", [])
    return {
        "execution": execution_arn,
        "status": execution["PipelineExecutionStatus"],
        "failure_reason": execution.get("FailureReason"),
        "steps": [{"name": s["StepName"], "status": s["StepStatus"], "failure_reason": s.get("FailureReason")} for s in steps],
    }

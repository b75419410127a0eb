"""The deployed SageMaker Pipeline from the command line: upsert (development), start, status."""

from __future__ import annotations

from .definition import PipelineSettings, definition_json


def _client(region: str | None = None):
    import boto3

    return boto3.client("sagemaker", region_name=region)


def upsert(settings: PipelineSettings, client=None) -> str:
    """Create or update the pipeline with this definition; returns its ARN."""
    client = client or _client(settings.region)
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


def start(name: str, parameters: dict[str, str], client=None, region: str | None = None) -> str:
    """Start an execution; parameters are the definition's names (DataUri, Classes, ModelKind, ...)."""
    client = client or _client(region)
    response = client.start_pipeline_execution(
        PipelineName=name,
        PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in parameters.items() if v is not None],
    )
    return response["PipelineExecutionArn"]


def status(execution_arn: str, client=None, region: str | None = None) -> dict:
    client = client or _client(region)
    execution = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
    steps = client.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn).get("PipelineExecutionSteps", [])
    return {
        "execution": execution_arn,
        "status": execution["PipelineExecutionStatus"],
        "failure_reason": execution.get("FailureReason"),
        "steps": [{"name": s["StepName"], "status": s["StepStatus"], "failure_reason": s.get("FailureReason")} for s in steps],
    }

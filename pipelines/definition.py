"""The SageMaker Pipeline: Preprocess → Train → Evaluate → gate on mean image AUROC → Register or Fail.

Built with the SageMaker Python SDK v3 under a `PipelineSession`, which records requests instead of
calling AWS. Every step runs the IVADAS container image (its URI is an input), so building the
definition uploads nothing, needs no credentials, and gives the same bytes for the same inputs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from types import SimpleNamespace

from inference.kinds import DEFAULT_KINDS

PROCESSING_ROOT = "/opt/ml/processing"
EVALUATION_FILE = "evaluation.json"
GATE_METRIC = "image_auroc"
DEFAULT_GATE = 0.9
#: What the Evaluate step adds to `evaluation.json` for the steps after it (see `gate_and_registration`).
QUALITY_GATE_KEY = "quality_gate"
REGISTRATION_KEY = "registration"
#: DataSnapshot's value when the caller did not say which snapshot of the data a run reads.
UNKNOWN_SNAPSHOT = "unknown"
#: An explicit SDK config: no telemetry calls while building, and no defaults from the user's
#: own SageMaker config files leaking into what should be the same bytes everywhere.
SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


@dataclass(frozen=True)
class PipelineSettings:
    """Deploy-time inputs of the definition (execution-time inputs are pipeline parameters)."""

    name: str = "ivadas-training"
    image_uri: str = "000000000000.dkr.ecr.us-east-1.amazonaws.com/ivadas-training:latest"
    inference_image_uri: str = "000000000000.dkr.ecr.us-east-1.amazonaws.com/ivadas-endpoint:latest"
    role_arn: str = "arn:aws:iam::000000000000:role/ivadas-pipeline"
    artifacts_bucket: str = "ivadas-artifacts"
    data_uri: str = "s3://ivadas-data/demo"
    region: str = "us-east-1"
    model_kind: str = DEFAULT_KINDS["image"]
    source_revision: str = "unknown"
    classes: str = "tiles,fabric,wood"
    gate: float = DEFAULT_GATE
    approval_status: str = "PendingManualApproval"
    processing_instance_type: str = "ml.m5.xlarge"
    training_instance_type: str = "ml.m5.2xlarge"
    #: Where the Train and Evaluate steps record their MLflow run: the managed tracking server's ARN
    #: (the `sagemaker-mlflow` plugin in the training image signs the requests); empty: no tracking.
    mlflow_tracking_uri: str = ""
    tags: dict = field(default_factory=dict)


def resource_slug(kind: str) -> str:
    """A kind's name as SageMaker resource names allow it (letters, digits, hyphens: `isolation_forest` → `isolation-forest`)."""
    return kind.replace("_", "-")


def model_package_group(prefix: str, kind: str) -> str:
    return f"{prefix}-{resource_slug(kind)}"


def gate_and_registration(report: dict, metric: str, kind: str) -> dict:
    """The sections the QualityGate and Register steps read from `evaluation.json`.

    The gate's metric and its value are spelt out because the pipeline cannot know which metric a
    kind is judged on, and `defined` is a boolean because a condition that compares a null fails with
    an error that says nothing about the data: the gate first asks whether the value exists and fails
    with a reason when it does not (a split without anomalies has no ranking metric). The package
    group is named here because SageMaker names cannot hold the underscores kind names may have.
    """
    value = report.get("mean", {}).get(metric)
    defined = isinstance(value, (int, float)) and value == value  # NaN is undefined too
    reason = "" if defined else (
        f"mean {metric} is undefined: no class or asset has both normal and anomalous evaluation data, so the gate "
        f"cannot judge the model; add labelled anomalies to the evaluation data")
    return {
        QUALITY_GATE_KEY: {"metric": metric, "value": float(value) if defined else None, "defined": defined, "reason": reason},
        REGISTRATION_KEY: {"model_kind": kind, "group_suffix": resource_slug(kind)},
    }


def _sdk():
    """Import the SDK lazily (and with a region: v3 resolves one at import time)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # The definition is built offline; the role is checked by SageMaker when the pipeline is created.
    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
    from sagemaker.core import model_registry
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig, StoppingCondition
    from sagemaker.core.workflow.conditions import ConditionEquals, ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.pipeline_experiment_config import PipelineExperimentConfig
    from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep, TrainingStep
    from sagemaker.train.model_trainer import ModelTrainer

    return SimpleNamespace(**{k: v for k, v in locals().items()})


def parameters(sdk, settings: PipelineSettings) -> SimpleNamespace:
    return SimpleNamespace(
        data_uri=sdk.ParameterString("DataUri", default_value=settings.data_uri),
        # The content hash of the data under DataUri (`pipelines.aws.start` computes it). Step caching keys
        # on a step's arguments, never on the files they point at: with the hash among them, changed data
        # under the same URI is a cache miss instead of a model trained on yesterday's files.
        data_snapshot=sdk.ParameterString("DataSnapshot", default_value=UNKNOWN_SNAPSHOT),
        classes=sdk.ParameterString("Classes", default_value=settings.classes),
        model_kind=sdk.ParameterString("ModelKind", default_value=settings.model_kind),
        # The kind's own settings as a JSON object of strings (`{"backbone": "resnet18"}`, `{"window": "60"}`):
        # kinds differ in what they take, and one definition serves them all; unset ones keep the kind's defaults.
        kind_settings=sdk.ParameterString("KindSettings", default_value="{}"),
        gate=sdk.ParameterFloat("AurocGate", default_value=settings.gate),
        approval=sdk.ParameterString("ApprovalStatus", default_value=settings.approval_status),
        processing_instance=sdk.ParameterString("ProcessingInstanceType", default_value=settings.processing_instance_type),
        training_instance=sdk.ParameterString("TrainingInstanceType", default_value=settings.training_instance_type),
        source_revision=sdk.ParameterString("SourceRevision", default_value=settings.source_revision),
    )


def _processor(sdk, session, settings: PipelineSettings, p, step: str):
    return sdk.Processor(
        role=settings.role_arn,
        image_uri=settings.image_uri,
        instance_count=1,
        instance_type=p.processing_instance,
        entrypoint=["python", "-m", f"pipelines.steps.{step}"],
        sagemaker_session=session,
        # Environment is part of a processing step's cache key; the snapshot makes it the data's too.
        env={"IVADAS_STEP": step, "IVADAS_DATA_SNAPSHOT": p.data_snapshot, **tracking_environment(settings)},
    )


def tracking_environment(settings: PipelineSettings) -> dict:
    """MLflow's tracking URI and the experiments' prefix for the steps that track (none without a server)."""
    if not settings.mlflow_tracking_uri:
        return {}
    return {"MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri, "IVADAS_EXPERIMENT_PREFIX": settings.name}


def _output_uri(sdk, settings: PipelineSettings, step: str):
    """Where a step writes: under this execution's ID, so that no run overwrites what an earlier run
    registered (metrics of a model version), two runs never race, and a cached step's outputs stay
    the ones it produced."""
    root = "s3://" + "/".join([settings.artifacts_bucket, "pipelines", settings.name, "executions"])
    return sdk.Join(on="/", values=[root, sdk.ExecutionVariables.PIPELINE_EXECUTION_ID, step])


def _evaluation_value(sdk, evaluate, evaluation_file, *path: str):
    return sdk.JsonGet(step_name=evaluate.name, property_file=evaluation_file, json_path=".".join(path))


def build_pipeline(settings: PipelineSettings = PipelineSettings()):
    """The `Pipeline` object; `definition()` on it gives the JSON."""
    sdk = _sdk()
    session = sdk.PipelineSession(default_bucket=settings.artifacts_bucket, sagemaker_config=SDK_CONFIG)
    p = parameters(sdk, settings)
    cache = sdk.CacheConfig(enable_caching=True, expire_after="P30D")

    preprocess = sdk.ProcessingStep(
        name="Preprocess",
        step_args=_processor(sdk, session, settings, p, "preprocess").run(
            inputs=[_processing_input(sdk, "data", p.data_uri, f"{PROCESSING_ROOT}/input/data")],
            outputs=[_processing_output(sdk, "manifest", f"{PROCESSING_ROOT}/output/manifest",
                                        _output_uri(sdk, settings, "preprocess"))],
            arguments=["--classes", p.classes, "--kind", p.model_kind, "--settings", p.kind_settings],
        ),
        cache_config=cache,
    )
    manifest_uri = preprocess.properties.ProcessingOutputConfig.Outputs["manifest"].S3Output.S3Uri

    trainer = sdk.ModelTrainer(
        sagemaker_session=session,
        role=settings.role_arn,
        training_image=settings.image_uri,
        compute=sdk.Compute(instance_type=p.training_instance, instance_count=1, volume_size_in_gb=50),
        stopping_condition=sdk.StoppingCondition(max_runtime_in_seconds=4 * 3600),
        output_data_config=sdk.OutputDataConfig(s3_output_path=_output_uri(sdk, settings, "train")),
        base_job_name=f"{settings.name}-train",
        environment=tracking_environment(settings) or None,
        hyperparameters={
            "model": p.model_kind,
            "classes": p.classes,
            "kind_settings": p.kind_settings,
            "source_revision": p.source_revision,
            "data_uri": p.data_uri,
            "data_snapshot": p.data_snapshot,  # hyperparameters are a training step's cache key
        },
    )
    train = sdk.TrainingStep(
        name="Train",
        step_args=trainer.train(input_data_config=[
            sdk.InputData(channel_name="data", data_source=p.data_uri),
            sdk.InputData(channel_name="manifest", data_source=manifest_uri),
        ]),
        cache_config=cache,
    )
    model_uri = train.properties.ModelArtifacts.S3ModelArtifacts

    evaluation_file = sdk.PropertyFile(name="Evaluation", output_name="evaluation", path=EVALUATION_FILE)
    evaluate = sdk.ProcessingStep(
        name="Evaluate",
        step_args=_processor(sdk, session, settings, p, "evaluate").run(
            inputs=[
                _processing_input(sdk, "model", model_uri, f"{PROCESSING_ROOT}/model"),
                _processing_input(sdk, "data", p.data_uri, f"{PROCESSING_ROOT}/input/data"),
            ],
            outputs=[_processing_output(sdk, "evaluation", f"{PROCESSING_ROOT}/evaluation",
                                        _output_uri(sdk, settings, "evaluate"))],
            arguments=["--classes", p.classes],
        ),
        property_files=[evaluation_file],
        cache_config=cache,
    )
    evaluation_uri = evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri
    gate = _quality_gate(sdk, session, settings, p, evaluate, evaluation_file, model_uri, evaluation_uri)
    return sdk.Pipeline(
        name=settings.name,
        parameters=list(vars(p).values()),
        steps=[preprocess, train, evaluate, gate],
        sagemaker_session=session,
        # Explicit (it is also the SDK's default): the pipeline role needs the Experiments actions for it.
        pipeline_experiment_config=sdk.PipelineExperimentConfig(
            sdk.ExecutionVariables.PIPELINE_NAME, sdk.ExecutionVariables.PIPELINE_EXECUTION_ID),
    )


def _quality_gate(sdk, session, settings, p, evaluate, evaluation_file, model_uri, evaluation_uri):
    """QualityGate: is the gate's metric defined at all → is it at least the gate → Register.

    A condition comparing a null errors out without saying why, so the first condition asks the
    boolean `quality_gate.defined` and fails with the evaluation's own reason when it is false.
    """
    def value(*path):
        return _evaluation_value(sdk, evaluate, evaluation_file, *path)

    metric, measured = value(QUALITY_GATE_KEY, "metric"), value(QUALITY_GATE_KEY, "value")
    register = sdk.ModelStep(name="Register", step_args=_register_args(
        sdk, session, settings, p, model_uri, evaluation_uri, group_suffix=value(REGISTRATION_KEY, "group_suffix"), value=value))
    below = sdk.FailStep(
        name="QualityGateFailed",
        error_message=sdk.Join(on=" ", values=["mean", metric, measured, "is below the gate", p.gate]),
    )
    threshold = sdk.ConditionStep(
        name="QualityGateThreshold",
        conditions=[sdk.ConditionGreaterThanOrEqualTo(left=measured, right=p.gate)],
        if_steps=[register],
        else_steps=[below],
    )
    undefined = sdk.FailStep(name="QualityGateUndefined", error_message=value(QUALITY_GATE_KEY, "reason"))
    return sdk.ConditionStep(
        name="QualityGate",
        conditions=[sdk.ConditionEquals(left=value(QUALITY_GATE_KEY, "defined"), right=True)],
        if_steps=[threshold],
        else_steps=[undefined],
    )


def _processing_input(sdk, name, source, destination):
    return sdk.ProcessingInput(
        input_name=name,
        s3_input=sdk.ProcessingS3Input(s3_uri=source, local_path=destination, s3_data_type="S3Prefix", s3_input_mode="File"),
    )


def _processing_output(sdk, name, source, destination):
    return sdk.ProcessingOutput(
        output_name=name,
        s3_output=sdk.ProcessingS3Output(s3_uri=destination, local_path=source, s3_upload_mode="EndOfJob"),
    )


def _register_args(sdk, session, settings: PipelineSettings, p, model_uri, evaluation_uri, group_suffix, value):
    """CreateModelPackage request for the model package group of this model kind (its SageMaker-safe name
    comes from the evaluation, which read the kind from the trained bundle)."""
    session.init_model_step_arguments(SimpleNamespace(sagemaker_session=session))
    metrics = sdk.ModelMetrics(model_statistics=sdk.MetricsSource(
        content_type="application/json", s3_uri=sdk.Join(on="/", values=[evaluation_uri, EVALUATION_FILE])))
    return sdk.model_registry.create_model_package_from_containers(
        session,
        containers=[{"Image": settings.inference_image_uri, "ModelDataUrl": model_uri,
                     "Environment": {"IVADAS_MODEL_KIND": p.model_kind}}],
        content_types=["application/json", "image/png", "image/jpeg", "text/csv"],
        response_types=["application/json"],
        inference_instances=["ml.c6i.xlarge", "ml.c6i.2xlarge", "ml.m5.xlarge"],
        model_package_group_name=sdk.Join(on="-", values=[settings.name, group_suffix]),
        model_metrics=metrics._to_request_dict(),
        approval_status=p.approval,
        customer_metadata_properties={
            "data_uri": p.data_uri,
            "classes": p.classes,
            "model_kind": p.model_kind,
            "kind_settings": p.kind_settings,
            "source_revision": p.source_revision,
            "data_snapshot": p.data_snapshot,
            # the MLflow run of this training (`untracked` without a tracking server)
            "mlflow_run_id": value("tracking", "run_id"),
        },
        # one definition trains image and sensor kinds alike
        domain="MACHINE_LEARNING",
        task="OTHER",
    )


def definition_json(settings: PipelineSettings = PipelineSettings()) -> str:
    """The pipeline definition as canonical JSON (sorted keys): same inputs, same bytes."""
    import logging

    # The SDK warns that it drops job names it would otherwise pin: that is what we want.
    import warnings

    for noisy in ("sagemaker.core.workflow.utilities", "sagemaker.mlops.workflow.model_step"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Running within a PipelineSession")  # recording is the point
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="sagemaker")
        definition = json.loads(build_pipeline(settings).definition())
    return json.dumps(definition, indent=2, sort_keys=True)

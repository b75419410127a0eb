"""Experiment tracking: a SageMaker managed MLflow tracking server for every training's run.

The Train and Evaluate steps log to it through the `sagemaker-mlflow` plugin (their
`MLFLOW_TRACKING_URI` is the server's ARN, set in the pipeline definition); the plugin signs each
request, so the pipeline role needs the `sagemaker-mlflow:` actions on this server only. The server
keeps artifacts under `mlflow/` of the artifacts bucket, through a role of its own that reaches that
prefix and the project key and nothing else. The Model Registry stays the governance record: each
model version names its run (`mlflow_run_id` in its metadata).
"""

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

ARTIFACT_PREFIX = "mlflow/"
#: What the training and evaluation steps do on the server: experiments, runs, their data and artifacts
#: (not AccessUI: the jobs have no use for the UI, and it takes no resource but "*").
TRACKING_ACTIONS = (
    "sagemaker-mlflow:CreateExperiment", "sagemaker-mlflow:GetExperiment",
    "sagemaker-mlflow:GetExperimentByName", "sagemaker-mlflow:SearchExperiments", "sagemaker-mlflow:CreateRun",
    "sagemaker-mlflow:GetRun", "sagemaker-mlflow:UpdateRun", "sagemaker-mlflow:SearchRuns", "sagemaker-mlflow:LogBatch",
    "sagemaker-mlflow:LogMetric", "sagemaker-mlflow:LogParam", "sagemaker-mlflow:SetTag", "sagemaker-mlflow:LogInputs",
    "sagemaker-mlflow:GetMetricHistory", "sagemaker-mlflow:ListArtifacts", "sagemaker-mlflow:GetDownloadURIForModelVersionArtifacts",
)


class ExperimentTracking(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, storage):
        super().__init__(scope, construct_id)
        bucket = storage.artifacts
        self.role = iam.Role(self, "ServerRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                             description=f"{config.prefix}: MLflow tracking server artifacts (mlflow/ of the artifacts bucket)")
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            resources=[bucket.arn_for_objects(f"{ARTIFACT_PREFIX}*")]))
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["s3:ListBucket", "s3:GetBucketLocation"], resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{ARTIFACT_PREFIX}*", ""]}}))
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[storage.key.key_arn]))
        self.server = sagemaker.CfnMlflowTrackingServer(
            self, "Server", tracking_server_name=f"{config.prefix}-mlflow",
            artifact_store_uri=f"s3://{bucket.bucket_name}/{ARTIFACT_PREFIX.rstrip('/')}",
            role_arn=self.role.role_arn, tracking_server_size=config.mlflow_server_size,
            # the Model Registry is the governance record; MLflow's own registry stays empty
            automatic_model_registration=False,
            weekly_maintenance_window_start="Sun:03:00",
        )
        policy = self.role.node.try_find_child("DefaultPolicy")
        if policy is not None:  # the server checks its role's access to the bucket when it is created
            self.server.node.add_dependency(policy)
        self.arn = self.server.attr_tracking_server_arn
        self.arn_pattern = (f"arn:{Stack.of(self).partition}:sagemaker:{Stack.of(self).region}:{Stack.of(self).account}:"
                            f"mlflow-tracking-server/{config.prefix}-mlflow")

    def grant_tracking(self, role: iam.IRole) -> None:
        """Log runs on this server (the pipeline's jobs)."""
        role.add_to_principal_policy(iam.PolicyStatement(actions=list(TRACKING_ACTIONS), resources=[self.arn]))

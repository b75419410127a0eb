"""Training: the SageMaker Pipeline from `pipelines.definition`, its role, one model package group per kind."""

from aws_cdk import Fn, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from inference.kinds import MODEL_KINDS
from pipelines.definition import PipelineSettings, definition_json

from .serving import kind_id

# Stand-ins the SDK accepts while building the definition; CloudFormation substitutes the real values.
PLACEHOLDERS = {
    "TrainingImageUri": "111111111111.dkr.ecr.us-east-1.amazonaws.com/ivadas-placeholder-training:placeholder",
    "EndpointImageUri": "111111111111.dkr.ecr.us-east-1.amazonaws.com/ivadas-placeholder-endpoint:placeholder",
    "PipelineRoleArn": "arn:aws:iam::111111111111:role/ivadas-placeholder-role",
    "ArtifactsBucket": "ivadas-placeholder-artifacts",
    "DataBucket": "ivadas-placeholder-data",
    "MlflowTrackingServerArn": "arn:aws:sagemaker:us-east-1:111111111111:mlflow-tracking-server/ivadas-placeholder-mlflow",
}


def substitutable_definition(config, tracked: bool = False) -> str:
    settings = PipelineSettings(
        mlflow_tracking_uri=PLACEHOLDERS["MlflowTrackingServerArn"] if tracked else "",
        name=config.pipeline_name, image_uri=PLACEHOLDERS["TrainingImageUri"], inference_image_uri=PLACEHOLDERS["EndpointImageUri"],
        role_arn=PLACEHOLDERS["PipelineRoleArn"], artifacts_bucket=PLACEHOLDERS["ArtifactsBucket"],
        data_uri=f"s3://{PLACEHOLDERS['DataBucket']}/datasets", region=config.region, model_kind=config.default_model,
        classes=",".join(config.classes), gate=config.auroc_gate,
        approval_status="Approved" if config.approval_mode == "auto" else "PendingManualApproval",
        processing_instance_type=config.processing_instance_type, training_instance_type=config.training_instance_type,
    )
    text = definition_json(settings).replace("${", "${!")  # literal ${ stays literal under Fn::Sub
    for variable, placeholder in PLACEHOLDERS.items():
        text = text.replace(placeholder, "${" + variable + "}")
    return text


class Training(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, storage, images, tracking=None):
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(self, "PipelineRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                             description="IVADAS pipeline, processing and training jobs")
        storage.data.grant_read(self.role)
        storage.artifacts.grant_read_write(self.role)
        images.training.repository.grant_pull(self.role)
        images.endpoint.repository.grant_pull(self.role)
        job_arn = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob",
                     "sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
                     "sagemaker:AddTags"],
            # SageMaker Pipelines names the jobs it starts pipelines-<execution id>-<step>-<suffix>
            resources=[f"{job_arn}:processing-job/pipelines-*", f"{job_arn}:training-job/pipelines-*"]))
        self.groups = {}
        for kind in MODEL_KINDS:
            group = sagemaker.CfnModelPackageGroup(self, f"{kind_id(kind)}Group", model_package_group_name=config.model_package_group(kind),
                                                   model_package_group_description=f"IVADAS {kind} models")
            self.groups[kind] = group
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:DescribeModelPackageGroup"],
            resources=[f"{job_arn}:model-package-group/{config.pipeline_name}-*", f"{job_arn}:model-package/{config.pipeline_name}-*/*"]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["iam:PassRole"], resources=[self.role.role_arn],
                                                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:/aws/sagemaker/*"]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"],
                                                    conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}))
        self.role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        # The definition's PipelineExperimentConfig: an experiment named after the pipeline, a trial (run
        # group) per execution and a trial component (run) per job, created with the pipeline's role.
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateExperiment", "sagemaker:DescribeExperiment", "sagemaker:CreateTrial",
                     "sagemaker:DescribeTrial", "sagemaker:CreateTrialComponent", "sagemaker:DescribeTrialComponent",
                     "sagemaker:UpdateTrialComponent", "sagemaker:AssociateTrialComponent", "sagemaker:AddTags"],
            resources=[f"{job_arn}:experiment/{config.pipeline_name}", f"{job_arn}:experiment-trial/*",
                       f"{job_arn}:experiment-trial-component/*"]))
        if tracking is not None:  # the Train and Evaluate steps log their MLflow run to the managed server
            tracking.grant_tracking(self.role)
        body = Fn.sub(substitutable_definition(config, tracked=tracking is not None), {
            **({"MlflowTrackingServerArn": tracking.arn} if tracking is not None else {}),
            "TrainingImageUri": images.training.image_uri, "EndpointImageUri": images.endpoint.image_uri,
            "PipelineRoleArn": self.role.role_arn, "ArtifactsBucket": storage.artifacts.bucket_name,
            "DataBucket": storage.data.bucket_name,
        })
        self.pipeline = sagemaker.CfnPipeline(
            self, "Pipeline", pipeline_name=config.pipeline_name, role_arn=self.role.role_arn,
            pipeline_definition={"PipelineDefinitionBody": body},
            pipeline_description="IVADAS: preprocess, train, evaluate, quality gate, register",
        )
        for group in self.groups.values():
            self.pipeline.add_resource_dependency(group)  # the groups exist before any run registers into them


"""The model life cycle from the browser on AWS: the API routes for datasets, trainings, approval,
trial detections and feedback (lambda/predict/routes_datasets.py, routes_trainings.py), and what
they may touch.

- Datasets live under `datasets/` of the data bucket. Browsers upload straight to S3 with presigned
  POST forms the API Lambda signs (API Gateway stops at 10 MB): the Lambda may put objects under
  `datasets/` only, and the bucket's CORS lets the UI's origin (the distribution) POST forms. The
  CORS rule is set once both exist (PutBucketCors), since the distribution already depends on the
  API, which names the bucket.
- Trainings start the pipeline: sagemaker:StartPipelineExecution on that pipeline's ARN only, and
  read their executions' steps.
- Trial detections are Processing jobs of the training image, run as the pipeline's role.
- Detector imports (`POST /models/import`) are too: the job runs `pipelines.detector.job` on the
  files uploaded under `datasets/imports/<id>/`, uploads the bundle to the artifacts bucket and
  registers the version in the pipeline's detector group, as the pipeline's role.
- Approval and rejection update model packages of the pipeline's groups only; reports read the
  evaluation outputs under `pipelines/<name>/` of the artifacts bucket; feedback reads kept
  inspection images (and decrypts them with the inspection key, through S3 only).
"""

import shutil
import tempfile
from pathlib import Path

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import custom_resources as cr
from constructs import Construct

DATASETS_PREFIX = "datasets/"
#: kept inspection images (inspections/<day>/<request id>.img), read when a person verifies a verdict
INSPECTION_IMAGES = "inspections/*/*.img"
#: API Gateway resources of the life-cycle routes (the Lambda's router has the same paths)
ROUTES = {
    "datasets": ["GET"], "datasets/uploads": ["POST"], "datasets/uploads/{upload_id}/complete": ["POST"],
    "datasets/{class_name}": ["GET"], "datasets/{class_name}/images/{image_id}": ["GET", "DELETE"],
    "trainings": ["GET", "POST"], "trainings/{training_id}": ["GET"], "trainings/{training_id}/report": ["GET"],
    "trainings/{training_id}/approval": ["POST"], "versions": ["GET"], "versions/{kind}/{number}/approval": ["POST"],
    "trials": ["GET", "POST"], "trials/{trial_id}": ["GET"], "feedback": ["POST"],
    # bring-your-own detectors (lambda/predict/routes_imports.py)
    "models/import/uploads": ["POST"], "models/import": ["POST"], "models/imports": ["GET"],
    "models/imports/{import_id}": ["GET"],
}


class Lifecycle(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, storage, api, web, training, images):
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.function = api.function
        arn = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        self.pipeline_arn = f"{arn}:pipeline/{config.pipeline_name}"
        self.function.add_environment("DATASET_STORE", f"s3://{storage.data.bucket_name}")
        self.function.add_environment("DATASET_STORE_KMS_KEY", storage.key.key_arn)
        self.function.add_environment("MODEL_REGISTRY", "sagemaker")
        self.function.add_environment("PIPELINE_NAME", config.pipeline_name)
        self.yaml_layer = lambda_.LayerVersion(
            self, "PyYamlLayer", code=lambda_.Code.from_asset(pyyaml_layer_folder()),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_11], description="PyYAML (pure Python): class lists in dataset zips")
        self.function.add_layers(self.yaml_layer)
        self._grant_datasets(storage, stack.region)
        self._grant_pipeline(arn, config)
        self._grant_reports(storage, config)
        self._grant_trials(arn, config, storage, training, images)
        self._grant_imports(arn, config, training, images)
        self._routes(api)
        self.cors = self._upload_cors(storage, web)
        self._acknowledge(storage, config)

    def _grant_datasets(self, storage, region: str) -> None:
        """Read, write (uploads and presigned forms, which carry the Lambda's own permission), copy
        and delete under datasets/ of the data bucket, with the data key through S3 only."""
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:ListBucket"], resources=[storage.data.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{DATASETS_PREFIX}*"]}}))
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            resources=[storage.data.arn_for_objects(f"{DATASETS_PREFIX}*")]))
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[storage.key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}))

    def _grant_pipeline(self, arn: str, config) -> None:
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:StartPipelineExecution"], resources=[self.pipeline_arn]))
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:DescribePipelineExecution", "sagemaker:ListPipelineExecutionSteps"],
            resources=[f"{self.pipeline_arn}/execution/*"]))
        prefix = config.pipeline_name
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:ListModelPackages", "sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"],
            resources=[f"{arn}:model-package-group/{prefix}-*", f"{arn}:model-package/{prefix}-*/*"]))

    def _grant_reports(self, storage, config) -> None:
        """The evaluation a report shows (its plots beside it) and the inspection images feedback verifies
        (encrypted with the inspection key: decrypt through S3)."""
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[storage.artifacts.arn_for_objects(f"pipelines/{config.pipeline_name}/*"),
                                                 storage.artifacts.arn_for_objects(INSPECTION_IMAGES)]))
        storage.grant_inspection_objects(self.function, read=True)

    def _grant_trials(self, arn: str, config, storage, training, images) -> None:
        """A trial is a Processing job of the training image, run as the pipeline's role (which reads
        the data bucket and writes the artifacts bucket); the API starts and reads only trial jobs and
        passes only that role, only to SageMaker."""
        self.function.add_environment("ARTIFACTS_BUCKET", storage.artifacts.bucket_name)
        self.function.add_environment("TRIAL_IMAGE_URI", images.training.image_uri)
        self.function.add_environment("TRIAL_ROLE_ARN", training.role.role_arn)
        self.trial_jobs = f"{arn}:processing-job/{config.pipeline_name}-trial-*"
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob"], resources=[self.trial_jobs]))
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=[training.role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[storage.artifacts.arn_for_objects("trials/*")]))

    def _grant_imports(self, arn: str, config, training, images) -> None:
        """An import is a Processing job of the training image, run as the pipeline's role (passed to
        SageMaker under the trials' grant), which reads the upload, writes the bundle and registers
        it; the API starts and reads only import jobs, and reads their result under pipelines/<name>/."""
        self.function.add_environment("IMPORT_IMAGE_URI", images.training.image_uri)
        self.function.add_environment("ENDPOINT_IMAGE_URI", images.endpoint.image_uri)
        self.function.add_environment("IMPORT_ROLE_ARN", training.role.role_arn)
        self.import_jobs = f"{arn}:processing-job/{config.pipeline_name}-import-*"
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob"], resources=[self.import_jobs]))

    def _routes(self, api) -> None:
        integration = apigw.LambdaIntegration(self.function, timeout=Duration.seconds(29))
        authorizer = getattr(api, "authorizer", None)  # people sign in; the Lambda checks their group per route
        for path, methods in ROUTES.items():
            resource = api.rest_api.root.resource_for_path(path)
            for method in methods:
                options = {}
                if authorizer is not None:
                    options.update(authorizer=authorizer, authorization_type=apigw.AuthorizationType.COGNITO)
                resource.add_method(method, integration, **options)

    def _upload_cors(self, storage, web) -> cr.AwsCustomResource:
        origin = f"https://{web.distribution.distribution_domain_name}"
        call = cr.AwsSdkCall(
            service="S3", action="putBucketCors",
            parameters={"Bucket": storage.data.bucket_name, "CORSConfiguration": {"CORSRules": [{
                "AllowedOrigins": [origin], "AllowedMethods": ["POST"], "AllowedHeaders": ["*"],
                "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 3000}]}},
            physical_resource_id=cr.PhysicalResourceId.of(f"{storage.data.node.addr}-upload-cors"))
        return cr.AwsCustomResource(
            self, "UploadCors", on_create=call, on_update=call, install_latest_aws_sdk=False,
            policy=cr.AwsCustomResourcePolicy.from_statements([iam.PolicyStatement(
                actions=["s3:PutBucketCORS"], resources=[storage.data.bucket_arn])]))

    # ----------------------------------------------------------------------- cdk-nag (IAM5, by hand)

    def _acknowledge(self, storage, config) -> None:
        """Each wildcard this construct adds to the API's role, by the exact pattern cdk-nag reports, with
        why it cannot be narrower; and the findings of CDK's AwsCustomResource provider function."""
        stack = Stack.of(self)
        arn = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        prefix = config.pipeline_name
        findings = {
            f"{_render(stack, storage.data.bucket_arn)}/{DATASETS_PREFIX}*":
                "Datasets, their uploads, snapshots, trainings, trials and verified images are objects under datasets/ "
                "named by class and content hash at run time (get, put, delete; listing is conditioned on the prefix).",
            f"{_render(stack, storage.artifacts.bucket_arn)}/pipelines/{prefix}/*":
                "A training's report reads the evaluation its pipeline execution wrote under pipelines/<pipeline>/ "
                "(execution IDs are generated): s3:GetObject only.",
            f"{_render(stack, storage.artifacts.bucket_arn)}/{INSPECTION_IMAGES}":
                "Feedback reads the kept image of the inspection a person verifies (named by day and request id): "
                "s3:GetObject only.",
            f"{_render(stack, self.pipeline_arn)}/execution/*":
                "A training's progress reads its own pipeline execution, whose ID SageMaker generates.",
            _render(stack, f"{arn}:model-package-group/{prefix}-*"):
                "Approval lists the versions of this pipeline's model package groups (one per kind).",
            _render(stack, f"{arn}:model-package/{prefix}-*/*"):
                "Approval reads and updates this pipeline's model packages, numbered by SageMaker.",
            _render(stack, self.trial_jobs): "Trial detections start and read their own Processing jobs, named by trial id.",
            _render(stack, self.import_jobs): "Detector imports start and read their own Processing jobs, named by import id.",
            f"{_render(stack, storage.artifacts.bucket_arn)}/trials/*":
                "A trial's results, written by its Processing job under trials/<trial id>/: s3:GetObject only.",
        }
        for finding, reason in findings.items():
            _ack(self.function.role, f"AwsSolutions-IAM5[Resource::{finding}]", reason)
        provider = stack.node.try_find_child(f"AWS{cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace('-', '')}")
        if provider is not None:
            _ack(provider, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                           "AWSLambdaBasicExecutionRole]", "CDK's AwsCustomResource provider writes its own logs.")
            _ack(provider, "AwsSolutions-L1", "CDK's AwsCustomResource provider picks its own runtime.")


def pyyaml_layer_folder() -> str:
    """A layer folder (`python/yaml/`) with PyYAML's pure-Python modules as installed here: no compiled
    extension, so it runs on Lambda's Python whatever machine synthesizes (PyYAML falls back to its
    pure-Python parser), and synth needs neither Docker nor the network."""
    import yaml

    folder = Path(tempfile.mkdtemp(prefix="ivadas-pyyaml-layer-"))
    shutil.copytree(Path(yaml.__file__).parent, folder / "python" / "yaml",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return str(folder)


def _ack(construct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))


def _render(stack: Stack, value) -> str:
    """A value as cdk-nag names it in finding IDs (`<Logical.Attr>`, `<AWS::Partition>`)."""
    value = stack.resolve(value)
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_render(stack, part) for part in parts)
    if "Fn::GetAtt" in value:
        return "<" + ".".join(value["Fn::GetAtt"]) + ">"
    if "Ref" in value:
        return f"<{value['Ref']}>"
    return str(value)

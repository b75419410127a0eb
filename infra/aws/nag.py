"""cdk-nag (AwsSolutions) acknowledgments, written by hand: each names the rule, where it applies,
and why.

IAM5 (wildcards) is acknowledged one finding at a time, by the exact pattern cdk-nag reports
(`Action::s3:GetObject*`, `Resource::<bucket>/inspections/*`, `Resource::*`), never by reading the
policy and accepting whatever wildcard it holds. A resource wildcard also lists the only actions
it may carry, checked here at synth: a new action on an acknowledged pattern (or a new action on
`*`) stops synth just as a new wildcard does (cdk-nag reports it unacknowledged). An acknowledgment
whose wildcard is gone stops synth too, so the list stays true.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Acknowledgment, Stack, Validations


class UnacknowledgedWildcard(ValueError):
    """A wildcard permission no hand-written acknowledgment covers (or one that covers nothing)."""


@dataclass(frozen=True)
class Wildcard:
    #: the pattern as cdk-nag names it: "Action::s3:List*" or "Resource::arn:...:training-job/pipelines-*"
    finding: str
    reason: str
    #: for a resource pattern: every action it may carry (None: an action wildcard, or any action)
    actions: frozenset[str] | None = None


def _ack(construct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))


def _render(value) -> str:
    """A resolved CloudFormation value as cdk-nag names it in finding IDs (`<Logical.Attr>`, `<AWS::Partition>`)."""
    if isinstance(value, str):
        return value
    if "Fn::Sub" in value:
        text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        return re.sub(r"\$\{([^}]+)\}", r"<\1>", text)
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_render(part) for part in parts)
    if "Fn::GetAtt" in value:
        return "<" + ".".join(value["Fn::GetAtt"]) + ">"
    if "Ref" in value:
        return f"<{value['Ref']}>"
    return str(value)


def policy_wildcards(role) -> dict[str, set[str]]:
    """The IAM5 patterns of a role's default policy: "Action::<action>" → the resources it is allowed
    on, "Resource::<pattern>" → the actions allowed on it."""
    policy = role.node.try_find_child("DefaultPolicy")
    if policy is None:
        return {}
    found: dict[str, set[str]] = {}
    for statement in Stack.of(role).resolve(policy.document).get("Statement", []):
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = statement.get("Resource", [])
        resources = [_render(r) for r in ([resources] if isinstance(resources, (str, dict)) else resources)]
        for action in actions:
            if "*" in action:
                found.setdefault(f"Action::{action}", set()).update(resources)
        for resource in resources:
            if "*" in resource:
                found.setdefault(f"Resource::{resource}", set()).update(actions)
    return found


def acknowledge_wildcards(role, wildcards: list[Wildcard]) -> None:
    present = policy_wildcards(role)
    for wildcard in wildcards:
        if wildcard.finding not in present:
            raise UnacknowledgedWildcard(f"{role.node.path} no longer has {wildcard.finding}: remove its acknowledgment "
                                         "from infra/aws/nag.py")
        extra = present[wildcard.finding] - wildcard.actions if wildcard.actions is not None else set()
        if extra:
            raise UnacknowledgedWildcard(f"{role.node.path} allows {', '.join(sorted(extra))} on {wildcard.finding}, which "
                                         "its acknowledgment in infra/aws/nag.py does not name; acknowledge it by hand "
                                         "with a reason, or scope it")
        _ack(role, f"AwsSolutions-IAM5[{wildcard.finding}]", wildcard.reason)


# ---------------------------------------------------------------------------- patterns


def arn(stack: Stack, service: str, resource: str) -> str:
    return _render(stack.resolve(f"arn:{stack.partition}:{service}:{stack.region}:{stack.account}:{resource}"))


def objects(bucket, prefix: str = "") -> str:
    return _render(Stack.of(bucket).resolve(bucket.bucket_arn)) + f"/{prefix}*"


def _s(*actions: str) -> frozenset[str]:
    return frozenset(actions)


S3_PUT = _s("s3:PutObject", "s3:PutObjectLegalHold", "s3:PutObjectRetention", "s3:PutObjectTagging",
            "s3:PutObjectVersionTagging", "s3:Abort*")
S3_READ = _s("s3:GetBucket*", "s3:GetObject*", "s3:List*")
XRAY = _s("xray:PutTraceSegments", "xray:PutTelemetryRecords")
XRAY_REASON = ("X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) has no resource-level permissions; "
               "nothing else is allowed on *.")


def grant_expansions(key_arn: str | None, buckets: str) -> list[Wildcard]:
    """The action wildcards CDK's bucket and key grants write, each on named resources only."""
    expansions = {
        "s3:GetObject*": ("every read of an object or object version: GetObject, GetObjectVersion and their ACL, tagging, "
                          "attributes, legal hold, retention and torrent"),
        "s3:GetBucket*": "GetBucketLocation and the bucket's other configuration reads (versioning, policy, encryption, ...)",
        "s3:List*": ("ListBucket, ListBucketVersions, ListBucketMultipartUploads and ListMultipartUploadParts (on buckets "
                     "and their objects; no account-wide listing)"),
        "s3:DeleteObject*": "DeleteObject, DeleteObjectVersion, DeleteObjectTagging and DeleteObjectVersionTagging",
        "s3:Abort*": "AbortMultipartUpload (a large artifact upload that fails is cleaned up)",
        "kms:GenerateDataKey*": ("GenerateDataKey and GenerateDataKeyWithoutPlaintext (S3 uses them to write SSE-KMS objects), "
                                 "and GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext, which nothing here calls"),
        "kms:ReEncrypt*": "ReEncryptFrom and ReEncryptTo (S3 copies between SSE-KMS objects)",
    }
    where = f"on {buckets} only" if key_arn is None else f"on {buckets} and the project key only"
    return [Wildcard(f"Action::{action}", f"CDK's bucket/key grant: {action} is {what}, {where}.")
            for action, what in expansions.items()]


def _pick(wildcards: list[Wildcard], *actions: str) -> list[Wildcard]:
    return [w for w in wildcards if w.finding.split("::", 1)[1] in actions]


# ---------------------------------------------------------------------------- per role


def training_wildcards(main, config) -> list[Wildcard]:
    stack, storage = Stack.of(main.training), main.storage
    expansions = grant_expansions(storage.key.key_arn, "the data and artifacts buckets")
    experiment = _s("sagemaker:CreateExperiment", "sagemaker:DescribeExperiment", "sagemaker:CreateTrial", "sagemaker:DescribeTrial",
                    "sagemaker:CreateTrialComponent", "sagemaker:DescribeTrialComponent", "sagemaker:UpdateTrialComponent",
                    "sagemaker:AssociateTrialComponent", "sagemaker:AddTags")
    jobs = _s("sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob",
              "sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob", "sagemaker:AddTags")
    packages = _s("sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:DescribeModelPackageGroup")
    return [
        Wildcard("Resource::*", "ecr:GetAuthorizationToken (a registry login; pulls are limited to our two repositories by "
                 "ARN) and cloudwatch:PutMetricData (conditioned on the /aws/sagemaker/ namespace) have no resource-level "
                 "permissions.", _s("ecr:GetAuthorizationToken", "cloudwatch:PutMetricData")),
        Wildcard(f"Resource::{objects(storage.artifacts)}", "Pipeline steps write outputs under keys SageMaker names per "
                 "execution (pipelines/<execution>/<step>/...) and read the model bundles they register: objects of the "
                 "artifacts bucket, read and write.", _s(*S3_PUT, *S3_READ, "s3:DeleteObject*")),
        Wildcard(f"Resource::{objects(storage.data)}", "Training reads the dataset of whichever class it is started for "
                 "(datasets/<class>/...): objects of the data bucket, read only.", S3_READ),
        Wildcard(f"Resource::{arn(stack, 'sagemaker', 'processing-job/pipelines-*')}", "SageMaker Pipelines names the "
                 "processing jobs it starts pipelines-<execution id>-<step>-<suffix>.", jobs),
        Wildcard(f"Resource::{arn(stack, 'sagemaker', 'training-job/pipelines-*')}", "SageMaker Pipelines names the "
                 "training jobs it starts pipelines-<execution id>-<step>-<suffix>.", jobs),
        Wildcard(f"Resource::{arn(stack, 'sagemaker', f'model-package-group/{config.pipeline_name}-*')}",
                 f"One model package group per model kind, named {config.pipeline_name}-<kind>.", packages),
        Wildcard(f"Resource::{arn(stack, 'sagemaker', f'model-package/{config.pipeline_name}-*/*')}",
                 f"Versions of those groups ({config.pipeline_name}-<kind>/<version>), numbered by the registry.", packages),
        Wildcard(f"Resource::{arn(stack, 'logs', 'log-group:/aws/sagemaker/*')}", "SageMaker jobs log to the groups the "
                 "service names (/aws/sagemaker/ProcessingJobs, /aws/sagemaker/TrainingJobs), a stream per job.",
                 _s("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")),
        Wildcard(f"Resource::{arn(stack, 'sagemaker', 'experiment-trial/*')}", "The pipeline's experiment config makes a "
                 "trial per execution, named by the execution id SageMaker generates.", experiment),
        Wildcard(f"Resource::{arn(stack, 'sagemaker', 'experiment-trial-component/*')}", "A trial component per job of an "
                 "execution, named by SageMaker after the job.", experiment),
        *_pick(expansions, "s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*",
               "kms:GenerateDataKey*", "kms:ReEncrypt*"),
    ]


def model_role_wildcards(main, config) -> list[Wildcard]:
    stack, storage = Stack.of(main.serving), main.storage
    expansions = grant_expansions(None, "the artifacts bucket")
    return [
        Wildcard("Resource::*", "ecr:GetAuthorizationToken (pulls are limited to the endpoint repository by ARN) and "
                 "cloudwatch:PutMetricData (conditioned on the namespace) have no resource-level permissions.",
                 _s("ecr:GetAuthorizationToken", "cloudwatch:PutMetricData")),
        Wildcard(f"Resource::{objects(storage.artifacts, 'pipelines/')}", "Endpoints load the model bundle of the version "
                 "they serve, under pipelines/<execution>/...: read only.", S3_READ),
        Wildcard(f"Resource::{objects(storage.artifacts, 'data-capture/')}", "Data capture writes what the endpoint saw "
                 "in files SageMaker names under data-capture/<kind>/<endpoint>/<variant>/<yyyy/mm/dd/hh>/, with the "
                 "inspection key (the bucket refuses any other): s3:PutObject only.", _s("s3:PutObject")),
        Wildcard(f"Resource::{arn(stack, 'logs', f'log-group:/aws/sagemaker/Endpoints/{config.prefix}-*')}",
                 f"Endpoint log groups are named by SageMaker after our endpoints ({config.prefix}-<kind>).",
                 _s("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")),
        # the project key: decrypt only (the bundles), so no key-action wildcard is left on this role
        *_pick(expansions, "s3:GetObject*", "s3:GetBucket*", "s3:List*"),
    ]


def deploy_wildcards(main, config) -> list[Wildcard]:
    stack, storage = Stack.of(main.serving), main.storage
    hosting = _s("sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:CreateEndpointConfig",
                 "sagemaker:DescribeEndpointConfig", "sagemaker:CreateEndpoint", "sagemaker:DescribeEndpoint",
                 "sagemaker:UpdateEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities", "sagemaker:DeleteEndpoint",
                 "sagemaker:AddTags", "sagemaker:DeleteTags", "sagemaker:ListTags")
    named = f"named {config.prefix}-<kind> (endpoints) and {config.prefix}-<kind>-v<version>-<hash> (models, configs)"
    return [
        Wildcard("Resource::*", "sagemaker:ListModelPackages and the Application Auto Scaling Describe actions have no "
                 "resource-level permissions; " + XRAY_REASON,
                 _s("sagemaker:ListModelPackages", "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DescribeScalingPolicies", "application-autoscaling:DescribeScalingActivities",
                    *XRAY)),
        Wildcard(f"Resource::{objects(storage.artifacts, 'pipelines/')}", "The deploy function reads the evaluation and "
                 "bundle of a version under pipelines/<execution>/...: read only.", S3_READ),
        Wildcard(f"Resource::{arn(stack, 'sagemaker', f'model/{config.prefix}-*')}", f"Models {named}.", hosting),
        Wildcard(f"Resource::{arn(stack, 'sagemaker', f'endpoint-config/{config.prefix}-*')}", f"Endpoint configs {named}.",
                 hosting),
        Wildcard(f"Resource::{arn(stack, 'sagemaker', f'endpoint/{config.prefix}-*')}", f"Endpoints {named}.", hosting),
        Wildcard(f"Resource::{arn(stack, 'sagemaker', f'model-package/{config.pipeline_name}-*/*')}", "Versions of this "
                 f"pipeline's groups ({config.pipeline_name}-<kind>/<version>): read, and record transitions.",
                 _s("sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage")),
        Wildcard(f"Resource::{arn(stack, 'application-autoscaling', 'scalable-target/*')}", "Scalable targets have IDs "
                 "Application Auto Scaling generates; the resource ID condition names our endpoints' variants.",
                 _s("application-autoscaling:RegisterScalableTarget", "application-autoscaling:DeregisterScalableTarget",
                    "application-autoscaling:PutScalingPolicy", "application-autoscaling:DeleteScalingPolicy")),
        Wildcard(f"Resource::{arn(stack, 'cloudwatch', f'alarm:TargetTracking-endpoint/{config.prefix}-*')}",
                 f"Target tracking alarms are named TargetTracking-endpoint/<our endpoint>-* by Application Auto Scaling.",
                 _s("cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms")),
        *_pick(grant_expansions(None, "the artifacts bucket"), "s3:GetObject*", "s3:GetBucket*", "s3:List*"),
    ]


def predict_wildcards(main) -> list[Wildcard]:
    storage = main.storage
    return [
        Wildcard("Resource::*", XRAY_REASON, XRAY),
        Wildcard(f"Resource::{objects(storage.artifacts, 'inspections/')}", "Anomalous inspection images are written "
                 "under inspections/<date>/<request id>: s3:PutObject only.", _s("s3:PutObject")),
        Wildcard(f"Resource::{objects(storage.data, 'sensors/')}", "GET /assets reads what the sensor feed wrote under "
                 "sensors/<asset>/results/: s3:GetObject only (listing is conditioned on that prefix).", _s("s3:GetObject")),
    ]


def feed_wildcards(main) -> list[Wildcard]:
    return [
        Wildcard("Resource::*", XRAY_REASON, XRAY),
        Wildcard(f"Resource::{objects(main.storage.data, 'sensors/')}", "The sensor feed reads, writes and moves files "
                 "under sensors/<asset>/ (incoming/, results/, done/, failed/, state), named by asset and file at run "
                 "time.", _s("s3:GetObject", "s3:PutObject", "s3:DeleteObject")),
    ]


def rotation_wildcards(main) -> list[Wildcard]:
    return [Wildcard("Resource::*", "secretsmanager:GetRandomPassword (the new origin secret) has no resource-level "
                     "permissions; " + XRAY_REASON, _s("secretsmanager:GetRandomPassword", *XRAY))]


def bucket_deployment_wildcards(deployment, main) -> list[Wildcard]:
    stack = Stack.of(main)
    assets = _render(stack.resolve(f"arn:{stack.partition}:s3:::cdk-hnb659fds-assets-{stack.account}-{stack.region}"))
    return [
        Wildcard("Resource::*", "CloudFront invalidations (cloudfront:CreateInvalidation, GetInvalidation) of the new UI; "
                 "CDK's BucketDeployment provider grants them on *.", _s("cloudfront:CreateInvalidation", "cloudfront:GetInvalidation")),
        Wildcard(f"Resource::{objects(main.web.bucket)}", "CDK's BucketDeployment replaces the UI's files in the site "
                 "bucket (read, write, delete of its objects).", _s(*S3_PUT, *S3_READ, "s3:DeleteObject*")),
        Wildcard(f"Resource::{assets}/*", "CDK's BucketDeployment reads the UI's asset zip from the CDK bootstrap asset "
                 "bucket.", S3_READ),
        *_pick(grant_expansions(None, "the site bucket and the CDK asset bucket"), "s3:GetObject*", "s3:GetBucket*", "s3:List*",
               "s3:DeleteObject*", "s3:Abort*"),
    ]


LAMBDA_BASIC = "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"


def acknowledge_findings(edge: Stack, main, config=None) -> None:
    config = config or main.config
    acknowledge_wildcards(main.training.role, training_wildcards(main, config))
    acknowledge_wildcards(main.serving.model_role, model_role_wildcards(main, config))
    acknowledge_wildcards(main.serving.function.role, deploy_wildcards(main, config))
    acknowledge_wildcards(main.api.function.role, predict_wildcards(main))
    feed = main.sensor_feed
    acknowledge_wildcards(feed.function.role, feed_wildcards(main))
    rotation = main.origin_guard.rotation
    acknowledge_wildcards(rotation.role, rotation_wildcards(main))
    tracking_and_drift_findings(main, config)
    for function in (main.serving.function, main.api.function, feed.function, rotation):
        _ack(function, LAMBDA_BASIC, "AWSLambdaBasicExecutionRole only lets the function write its own log streams.")
        _ack(function, "AwsSolutions-L1", "Python 3.11 is the runtime of the container images and of the pinned Powertools "
                                          "layer; the functions move with them.")
    _ack(main.serving.dead_letters, "AwsSolutions-SQS3",
         "This queue is the dead-letter queue of the deployment queue; a dead-letter queue of its own would hide failures.")
    _ack(feed.dead_letters, "AwsSolutions-SQS3",
         "This queue is the dead-letter queue of the sensor feed's schedule; a dead-letter queue of its own would hide "
         "failures.")
    _ack(main.api.rest_api, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
         "The account-level API Gateway logging role uses AmazonAPIGatewayPushToCloudWatchLogs, the policy AWS documents for it.")
    health = main.api.rest_api.root.get_resource("health").node.find_child("GET")
    for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
        _ack(health, rule, "GET /health is the health check: it answers whether models are served and nothing else, "
                           "for monitors that cannot sign in; every other route of this API has the Cognito authorizer.")
    for method in _methods(main.stations.rest_api):
        if method.resource.path.startswith("/iam/"):
            _ack(method, "AwsSolutions-COG4", "Machines with AWS credentials sign this station route with SigV4 (IAM "
                                              "authorization): no user pool is involved.")
        else:
            reason = ("Inspection stations are machines, not people: this route requires an API key bound to a usage plan "
                      "(quota and throttle per station) and lets the caller only inspect (lambda/predict/access.py).")
            _ack(method, "AwsSolutions-APIG4", reason)
            _ack(method, "AwsSolutions-COG4", reason)
    _ack(main.web.distribution, "AwsSolutions-CFR1", "Factories can be anywhere; no country is excluded by default.")
    _ack(main.web.distribution, "AwsSolutions-CFR4",
         "With the default *.cloudfront.net certificate CloudFront negotiates TLS 1.2 where clients support it but cannot "
         "enforce a minimum; a custom domain and ACM certificate (README) enforce TLSv1.2_2021.")
    deployment = next(c for c in main.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
    _ack(deployment, LAMBDA_BASIC, "CDK's BucketDeployment provider writes its own logs with AWSLambdaBasicExecutionRole.")
    _ack(deployment, "AwsSolutions-L1", "CDK's BucketDeployment provider picks its own runtime.")
    acknowledge_wildcards(deployment.role, bucket_deployment_wildcards(deployment, main))


def _methods(rest_api):
    from aws_cdk import aws_apigateway as apigw

    return [c for c in rest_api.node.find_all() if isinstance(c, apigw.Method)]


def tracking_and_drift_findings(main, config) -> None:
    """The MLflow tracking server's role, the drift-monitoring job's and its schedule's, and the API's
    read of the latest monitoring report (infra/aws/constructs/tracking.py, drift_monitoring.py)."""
    stack, storage = Stack.of(main), main.storage
    if main.tracking is not None:
        acknowledge_wildcards(main.tracking.role, [
            Wildcard(f"Resource::{objects(storage.artifacts, 'mlflow/')}", "The MLflow tracking server keeps run artifacts "
                     "under keys it names below mlflow/ of the artifacts bucket.",
                     _s("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"))])
    drift = main.drift
    acknowledge_wildcards(drift.role, [
        Wildcard("Resource::*", "ecr:GetAuthorizationToken (a registry login; pulls are limited to the training repository), "
                 "sagemaker:ListModelPackages (no resource-level permission) and cloudwatch:PutMetricData (conditioned on "
                 "the IVADAS/Monitoring namespace); nothing else is allowed on *.",
                 _s("ecr:GetAuthorizationToken", "sagemaker:ListModelPackages", "cloudwatch:PutMetricData")),
        Wildcard(f"Resource::{objects(storage.artifacts, 'pipelines/')}", "The job reads each model version's training "
                 "reference beside its evaluation, under keys the pipeline names per execution: s3:GetObject only.",
                 _s("s3:GetObject")),
        Wildcard(f"Resource::{objects(storage.artifacts, 'monitoring/latest/')}", "The job writes its summary, report and "
                 "plots under monitoring/latest/: s3:PutObject only.", _s("s3:PutObject")),
        Wildcard(f"Resource::{objects(storage.data, 'datasets/feedback/inspection/')}", "The job reads the markers people's "
                 "confirmations and corrections leave, one per inspection: s3:GetObject only.", _s("s3:GetObject")),
        Wildcard(f"Resource::{objects(storage.artifacts, 'data-capture/')}", "The job reads the endpoints' data capture "
                 "(requests made straight to an endpoint), in files SageMaker names per endpoint, variant and hour: "
                 "s3:GetObject only.", _s("s3:GetObject")),
        Wildcard(f"Resource::{arn(stack, 'sagemaker', f'model-package/{config.pipeline_name}-*/*')}", "Versions of this "
                 "deployment's model package groups, to find a version's evaluation: DescribeModelPackage only.",
                 _s("sagemaker:DescribeModelPackage")),
        Wildcard(f"Resource::{arn(stack, 'logs', 'log-group:/aws/sagemaker/ProcessingJobs*')}", "Processing jobs log to "
                 "the group SageMaker names for them.",
                 _s("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")),
    ])
    acknowledge_wildcards(drift.schedule_role, [
        Wildcard(f"Resource::{arn(stack, 'sagemaker', f'processing-job/{drift.job_prefix}*')}", "Each scheduled run starts "
                 "a processing job named after this deployment and the schedule's execution id.",
                 _s("sagemaker:CreateProcessingJob", "sagemaker:AddTags"))])
    _ack(drift.report_reader, f"AwsSolutions-IAM5[Resource::{objects(storage.artifacts, 'monitoring/latest/')}]",
         "GET /monitoring and /monitoring/report read the latest run's summary and report: s3:GetObject only.")
    _ack(drift.run_starter, f"AwsSolutions-IAM5[Resource::{arn(stack, 'sagemaker', f'processing-job/{drift.job_prefix}*')}]",
         "POST /monitoring/run starts the monitoring job now, under a name of its own below this deployment's monitoring "
         "prefix (SageMaker refuses a name used before): sagemaker:CreateProcessingJob only, and iam:PassRole of the "
         "job's role alone.")

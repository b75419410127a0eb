"""cdk-nag (AwsSolutions) acknowledgments: each names the rule, where it applies, and why."""

import re

from aws_cdk import Acknowledgment, Stack, Validations

GRANTS = ("S3 and KMS actions come from CDK grants scoped to this project's buckets (object prefixes where the data "
          "is: pipelines/, data-capture/, inspections/) and its key; ")


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


def _wildcard_findings(role) -> list[str]:
    """The IAM5 finding IDs of a role's default policy: every wildcard action and resource in it."""
    policy = role.node.try_find_child("DefaultPolicy")
    if policy is None:
        return []
    document = Stack.of(role).resolve(policy.document)
    findings = []
    for statement in document.get("Statement", []):
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        for action in [actions] if isinstance(actions, str) else actions:
            if "*" in action:
                findings.append(f"AwsSolutions-IAM5[Action::{action}]")
        for resource in [resources] if isinstance(resources, (str, dict)) else resources:
            rendered = _render(resource)
            if "*" in rendered:
                findings.append(f"AwsSolutions-IAM5[Resource::{rendered}]")
    return sorted(set(findings))


def _ack_wildcards(role, reason: str) -> None:
    for finding in _wildcard_findings(role):
        _ack(role, finding, reason)


LAMBDA_BASIC = "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"


def acknowledge_findings(edge: Stack, main) -> None:
    _ack_wildcards(main.training.role, GRANTS + (
        "processing/training job and model package ARNs carry names SageMaker generates per execution, so they are "
        "prefixes of this pipeline's names; cloudwatch:PutMetricData (conditioned on the /aws/sagemaker/ namespace) and "
        "ecr:GetAuthorizationToken have no resource-level permissions."))
    _ack_wildcards(main.serving.model_role, GRANTS + (
        "endpoint log groups are named by SageMaker under this project's prefix; cloudwatch:PutMetricData (conditioned "
        "on the namespace) and ecr:GetAuthorizationToken have no resource-level permissions."))
    feed = main.sensor_feed
    for function in (main.serving.function, main.api.function, feed.function):
        _ack(function, LAMBDA_BASIC, "AWSLambdaBasicExecutionRole only lets the function write its own log streams.")
        _ack(function, "AwsSolutions-L1", "Python 3.11 is the runtime of the container images and of the pinned Powertools "
                                          "layer; the functions move with them.")
    _ack_wildcards(main.serving.function.role, GRANTS + (
        "the deploy function creates versioned models, endpoint configs and endpoints under this project's prefix and "
        "reads and records transitions of this pipeline's model packages; ListModelPackages and the Application Auto "
        "Scaling Describe actions have no resource-level permissions; scalable targets have generated IDs; target "
        "tracking alarms are named TargetTracking-endpoint/<our endpoint>-*; X-Ray tracing (PutTraceSegments) has no "
        "resource-level permissions."))
    _ack(main.serving.dead_letters, "AwsSolutions-SQS3",
         "This queue is the dead-letter queue of the deployment queue; a dead-letter queue of its own would hide failures.")
    _ack_wildcards(main.api.function.role, GRANTS + (
        "inspection images are written under inspections/; GET /assets reads what the sensor feed wrote under sensors/ "
        "of the data bucket (GetObject there only, listing conditioned on that prefix); X-Ray tracing "
        "(PutTraceSegments) has no resource-level permissions."))
    _ack_wildcards(feed.function.role, (
        "The sensor feed reads, writes and moves objects under sensors/ of the data bucket only: the files it scores, "
        "their results and its state are named by asset and file at run time, so the resource is that prefix (listing "
        "is conditioned on it too); X-Ray tracing (PutTraceSegments, PutTelemetryRecords) has no resource-level "
        "permissions."))
    _ack(feed.dead_letters, "AwsSolutions-SQS3",
         "This queue is the dead-letter queue of the sensor feed's schedule; a dead-letter queue of its own would hide "
         "failures.")
    _ack(main.api.origin_secret, "AwsSolutions-SMG4",
         "The origin secret is shared with CloudFront's origin configuration; rotating it means redeploying both, which "
         "`cdk deploy` does (README: rotate by redeploying after `aws secretsmanager put-secret-value`).")
    _ack(main.api.rest_api, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
         "The account-level API Gateway logging role uses AmazonAPIGatewayPushToCloudWatchLogs, the policy AWS documents for it.")
    _ack(main.api.rest_api, "AwsSolutions-APIG3",
         "The WAF web ACL is attached to the CloudFront distribution (CLOUDFRONT scope, us-east-1); the stage refuses any "
         "request that lacks CloudFront's origin secret, so the API cannot be reached around the WAF.")
    for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
        _ack(main.api.rest_api, rule,
             "Line-side inspection stations call /predict without user sign-in, as the design's API contract states; the API is "
             "reachable only through CloudFront + WAF (rate limit, managed rules) with throttling, and an authorizer can be "
             "added per deployment (README, AWS section).")
    _ack(main.web.distribution, "AwsSolutions-CFR1", "Factories can be anywhere; no country is excluded by default.")
    _ack(main.web.distribution, "AwsSolutions-CFR4",
         "With the default *.cloudfront.net certificate CloudFront negotiates TLS 1.2 where clients support it but cannot "
         "enforce a minimum; a custom domain and ACM certificate (README) enforce TLSv1.2_2021.")
    deployment = next(c for c in main.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
    _ack(deployment, LAMBDA_BASIC, "CDK's BucketDeployment provider writes its own logs with AWSLambdaBasicExecutionRole.")
    _ack(deployment, "AwsSolutions-L1", "CDK's BucketDeployment provider picks its own runtime.")
    _ack_wildcards(deployment.role, "CDK's BucketDeployment provider copies the UI from the CDK asset bucket into the site "
                                    "bucket; its grants are scoped to those two buckets.")

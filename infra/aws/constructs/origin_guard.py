"""The API's own URL refuses everything that did not come through CloudFront (and its WAF).

- A regional web ACL on the API stage blocks requests whose `X-Origin-Verify` header is not the
  origin secret (or, during a rotation, its pending value), so direct calls never reach the Lambda;
  the Lambda checks the header too (lambda/predict/origin_secret.py).
- The secret rotates every `originSecretRotationDays` (Secrets Manager rotation): the rotation
  Lambda (lambda/origin_rotation/rotate.py) makes a new value, lets the web ACL accept it, points
  CloudFront's origin header at it and then makes it current. No redeploy, no refused request.
- The previous value stays accepted for `originSecretGraceMinutes` (while CloudFront's edges take up
  the new header), by the API Lambda and the web ACL alike: a schedule runs the same function every
  minute to keep the web ACL to what the Lambda accepts, so after the grace the old value is refused
  at the WAF too (within a minute; ~43,000 short invocations and twice as many Secrets Manager reads
  a month, well under a dollar).
"""

from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from .api import ORIGIN_HEADER
from .waf import _visibility

ROOT = Path(__file__).resolve().parents[3]
RULE = "OriginSecretRequired"
#: how often the web ACL is brought back to what the API Lambda accepts (the grace period's end)
FOLLOW_MINUTES = 1


def header_is(value: str) -> wafv2.CfnWebACL.StatementProperty:
    return wafv2.CfnWebACL.StatementProperty(byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
        field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(single_header={"Name": ORIGIN_HEADER.lower()}),
        positional_constraint="EXACTLY", search_string=value,
        text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")]))


class OriginGuard(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, api, web, edge_web_acl_arn: str):
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        secret = api.origin_secret
        acl_name = f"{config.prefix}-api-origin"
        grace_s = str(config.origin_secret_grace_minutes * 60)
        self.web_acl = wafv2.CfnWebACL(
            self, "WebAcl", scope="REGIONAL", name=acl_name, default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(acl_name),
            rules=[wafv2.CfnWebACL.RuleProperty(
                name=RULE, priority=0, action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                # the value as deployed (a dynamic reference, resolved by CloudFormation); rotations rewrite it
                statement=wafv2.CfnWebACL.StatementProperty(not_statement=wafv2.CfnWebACL.NotStatementProperty(
                    statement=header_is(secret.secret_value.unsafe_unwrap()))),
                visibility_config=_visibility(RULE))])
        wafv2.CfnWebACLAssociation(self, "WebAclAssociation", resource_arn=api.rest_api.deployment_stage.stage_arn,
                                   web_acl_arn=self.web_acl.attr_arn)
        self.rotation = lambda_.Function(
            self, "RotationFunction", runtime=lambda_.Runtime.PYTHON_3_11, architecture=lambda_.Architecture.X86_64,
            handler="rotate.handler", code=lambda_.Code.from_asset(str(ROOT / "lambda" / "origin_rotation")),
            timeout=Duration.minutes(2), memory_size=256, tracing=lambda_.Tracing.ACTIVE,
            description="IVADAS: rotates the origin secret in the API's web ACL and CloudFront's origin header",
            log_group=logs.LogGroup(self, "RotationLogs", retention=logs.RetentionDays.ONE_YEAR),
            environment={"DISTRIBUTION_ID": web.distribution.distribution_id, "ORIGIN_HEADER": ORIGIN_HEADER,
                         "WEB_ACL_NAME": acl_name, "WEB_ACL_ID": self.web_acl.attr_id, "WEB_ACL_RULE": RULE,
                         "SECRET_ARN": secret.secret_arn, "ORIGIN_SECRET_GRACE_S": grace_s})
        distribution_arn = f"arn:{stack.partition}:cloudfront::{stack.account}:distribution/{web.distribution.distribution_id}"
        self.rotation.add_to_role_policy(iam.PolicyStatement(
            actions=["cloudfront:GetDistributionConfig", "cloudfront:UpdateDistribution"], resources=[distribution_arn]))
        # UpdateDistribution re-validates the distribution's (CloudFront-scope) web ACL association
        self.rotation.add_to_role_policy(iam.PolicyStatement(actions=["wafv2:GetWebACL"], resources=[edge_web_acl_arn]))
        self.rotation.add_to_role_policy(iam.PolicyStatement(
            actions=["wafv2:GetWebACL", "wafv2:UpdateWebACL"], resources=[self.web_acl.attr_arn]))
        self.schedule = secret.add_rotation_schedule(
            "Rotation", rotation_lambda=self.rotation, automatically_after=Duration.days(config.origin_secret_rotation_days),
            rotate_immediately_on_update=False)
        # the API Lambda accepts AWSPENDING and, for the grace period, AWSPREVIOUS: it reads the version list,
        # and so does the rotation function, to make the web ACL accept the same values
        api.function.add_environment("ORIGIN_SECRET_GRACE_S", grace_s)
        for function in (api.function, self.rotation):
            function.add_to_role_policy(iam.PolicyStatement(actions=["secretsmanager:ListSecretVersionIds"],
                                                            resources=[secret.secret_arn]))
        self.follow = events.Rule(
            self, "FollowSecret", schedule=events.Schedule.rate(Duration.minutes(FOLLOW_MINUTES)),
            description="IVADAS: the API's web ACL accepts what the API Lambda accepts (ends the old origin secret's grace)",
            targets=[targets.LambdaFunction(self.rotation, event=events.RuleTargetInput.from_object({"follow": "web-acl"}),
                                            retry_attempts=0)])  # the next minute's run does the same

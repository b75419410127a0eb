"""The WAF web ACL for CloudFront (it must live in us-east-1).

AWS managed rules (common, known bad inputs, IP reputation) and a per-IP rate limit. The common rule
set's 8 KB body-size rule would block every image upload, so it only counts, and a rule of ours
blocks bodies over 8 KB everywhere except `/predict`, which keeps its own limits (API Gateway 10 MB,
Lambda 6 MB, images 4.4 MB).
"""

from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

BODY_LIMIT_BYTES = 8192


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True)


def _managed(name: str, priority: int, overrides=()) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=name, priority=priority, override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
            vendor_name="AWS", name=name,
            rule_action_overrides=[wafv2.CfnWebACL.RuleActionOverrideProperty(
                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})) for rule in overrides] or None)),
        visibility_config=_visibility(name))


def _body_limit_outside_predict(priority: int) -> wafv2.CfnWebACL.RuleProperty:
    not_predict = wafv2.CfnWebACL.StatementProperty(not_statement=wafv2.CfnWebACL.NotStatementProperty(
        statement=wafv2.CfnWebACL.StatementProperty(byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
            field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}), positional_constraint="STARTS_WITH",
            search_string="/predict", text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")]))))
    large_body = wafv2.CfnWebACL.StatementProperty(size_constraint_statement=wafv2.CfnWebACL.SizeConstraintStatementProperty(
        field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(body=wafv2.CfnWebACL.BodyProperty(oversize_handling="MATCH")),
        comparison_operator="GT", size=BODY_LIMIT_BYTES,
        text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")]))
    return wafv2.CfnWebACL.RuleProperty(
        name="BodySizeOutsidePredict", priority=priority, action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(and_statement=wafv2.CfnWebACL.AndStatementProperty(statements=[large_body, not_predict])),
        visibility_config=_visibility("BodySizeOutsidePredict"))


class WebAcl(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config):
        super().__init__(scope, construct_id)
        rate = wafv2.CfnWebACL.RuleProperty(
            name="RatePerIp", priority=0, action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                limit=config.waf_rate_limit, aggregate_key_type="IP")),
            visibility_config=_visibility("RatePerIp"))
        self.acl = wafv2.CfnWebACL(
            self, "Acl", scope="CLOUDFRONT", default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            name=f"{config.prefix}-web", visibility_config=_visibility(f"{config.prefix}-web"),
            rules=[rate,
                   _managed("AWSManagedRulesCommonRuleSet", 1, overrides=("SizeRestrictions_BODY",)),
                   _body_limit_outside_predict(2),
                   _managed("AWSManagedRulesKnownBadInputsRuleSet", 3),
                   _managed("AWSManagedRulesAmazonIpReputationList", 4)])

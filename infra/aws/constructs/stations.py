"""Machines inspect: the station API, a regional REST API of its own (stage `stations`) in front of
the same predict Lambda, reached by inspection stations on the factory network without CloudFront.

- `POST /predict`, `POST /predict/batch`: an API key per station (`x-api-key`), each bound to a
  usage plan with the station's quota per day and throttle (config `stations`); API Gateway
  refuses a missing or unknown key (403) and a key over its quota or rate (429) before the Lambda.
- `POST /iam/predict`, `POST /iam/predict/batch`: SigV4-signed calls (IAM authorization) for
  machines that have AWS credentials (Greengrass, an IoT role alias, an EC2 role): no shared key.

The Lambda (access.py) lets either kind of caller inspect and nothing else. A regional web ACL on
the stage limits the rate per IP and applies AWS's known-bad-inputs and IP reputation rules.
"""

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from .api import error_template
from .waf import _managed, _visibility

STAGE = "stations"  # lambda/predict/origin_secret.py: the stage whose callers API Gateway has identified
ROUTES = ("predict", "predict/batch")


class StationApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, api):
        super().__init__(scope, construct_id)
        access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.ONE_YEAR)
        self.rest_api = apigw.RestApi(
            self, "RestApi", rest_api_name=f"{config.prefix}-stations", cloud_watch_role=False,
            endpoint_types=[apigw.EndpointType.REGIONAL], api_key_source_type=apigw.ApiKeySourceType.HEADER,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE, throttling_rate_limit=config.api_rate_limit, throttling_burst_limit=2 * config.api_rate_limit,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True, http_method=True, ip=True, protocol=True, request_time=True, resource_path=True,
                    response_length=True, status=True, user=True),
                tracing_enabled=True, logging_level=apigw.MethodLoggingLevel.ERROR, metrics_enabled=True))
        for response_type, status, code, message in (
            (apigw.ResponseType.BAD_REQUEST_BODY, "400", "bad_request", "$context.error.validationErrorString"),
            (apigw.ResponseType.INVALID_API_KEY, "403", "forbidden", "the API key is missing or not valid"),
            (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, "403", "forbidden", "send a station key (x-api-key) or sign with SigV4"),
            (apigw.ResponseType.ACCESS_DENIED, "403", "forbidden", "$context.error.message"),
            (apigw.ResponseType.QUOTA_EXCEEDED, "429", "quota_exceeded", "this station has used its requests for today"),
            (apigw.ResponseType.THROTTLED, "429", "throttled", "too many requests; retry shortly"),
            # the stage's web ACL: over the rate per IP, or a request that matches a known bad input
            (apigw.ResponseType.WAF_FILTERED, "403", "forbidden",
             "refused by the station API's firewall (too many requests from this address, or a known bad input)"),
            (apigw.ResponseType.REQUEST_TOO_LARGE, "413", "payload_too_large", "the request is larger than 10 MB"),
            (apigw.ResponseType.INTEGRATION_TIMEOUT, "504", "endpoint_timeout", "the model did not answer within 29 s"),
        ):
            self.rest_api.add_gateway_response(f"Gateway{response_type.response_type.title().replace('_', '')}",
                                               type=response_type, status_code=status, templates=error_template(code, message))
        validator = self.rest_api.add_request_validator("Validator", validate_request_body=True, validate_request_parameters=True)
        integration = apigw.LambdaIntegration(api.function, timeout=Duration.seconds(29))
        for path in ROUTES:
            self.rest_api.root.resource_for_path(path).add_method("POST", integration, api_key_required=True,
                                                                  request_validator=validator)
            self.rest_api.root.resource_for_path(f"iam/{path}").add_method(
                "POST", integration, authorization_type=apigw.AuthorizationType.IAM, request_validator=validator)
        self.stage = self.rest_api.deployment_stage
        self.keys = {}
        self.plans = {}
        for station in config.stations:
            key = self.rest_api.add_api_key(f"Key{_camel(station.name)}", api_key_name=f"{config.prefix}-{station.name}",
                                            description=f"inspection station {station.name}: POST /predict")
            plan = self.rest_api.add_usage_plan(
                f"Plan{_camel(station.name)}", name=f"{config.prefix}-{station.name}",
                quota=apigw.QuotaSettings(limit=station.quota_per_day, period=apigw.Period.DAY),
                throttle=apigw.ThrottleSettings(rate_limit=station.rate_per_second, burst_limit=station.burst))
            plan.add_api_stage(stage=self.stage)
            plan.add_api_key(key)
            self.keys[station.name], self.plans[station.name] = key, plan
        self.web_acl = wafv2.CfnWebACL(
            self, "WebAcl", scope="REGIONAL", default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            name=f"{config.prefix}-stations", visibility_config=_visibility(f"{config.prefix}-stations"),
            rules=[wafv2.CfnWebACL.RuleProperty(
                       name="RatePerIp", priority=0, action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                       statement=wafv2.CfnWebACL.StatementProperty(rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                           limit=config.waf_rate_limit, aggregate_key_type="IP")),
                       visibility_config=_visibility("StationsRatePerIp")),
                   _managed("AWSManagedRulesKnownBadInputsRuleSet", 1),
                   _managed("AWSManagedRulesAmazonIpReputationList", 2)])
        wafv2.CfnWebACLAssociation(self, "WebAclAssociation", resource_arn=self.stage.stage_arn,
                                   web_acl_arn=self.web_acl.attr_arn)

    @property
    def url(self) -> str:
        return self.rest_api.url


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace(".", "-").replace("_", "-").split("-"))

"""The API: the predict Lambda behind API Gateway, its inspection log, and the origin secret that
keeps the API's own URL from bypassing CloudFront and its WAF."""

import json
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from .sensor_feed import SensorStore
from .serving import powertools_layer
from .storage import INSPECTIONS_PREFIX

ROOT = Path(__file__).resolve().parents[3]
ORIGIN_HEADER = "X-Origin-Verify"
ROUTES = {"predict": ["POST"], "predict/batch": ["POST"], "health": ["GET"], "models": ["GET"], "inspections": ["GET"],
          # what the sensor feed found (lambda/predict/routes_sensors.py)
          "assets": ["GET"], "assets/{asset}/series": ["GET"], "assets/{asset}/events": ["GET"],
          # the latest monitoring run (lambda/predict/routes_monitoring.py)
          "monitoring": ["GET"], "monitoring/report": ["GET"], "monitoring/run": ["POST"]}
#: routes API Gateway lets through without a signed-in user (the health check); every other route has
#: the Cognito authorizer, and stations inspect through the station API (stations.py)
PUBLIC_ROUTES = ("health",)


def error_template(code: str, message: str) -> dict:
    return {"application/json": json.dumps({"error": {"code": code, "message": message}})}


class Api(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, storage, serving, sign_in, powertools_version: int):
        super().__init__(scope, construct_id)
        self.origin_secret = secretsmanager.Secret(  # rotated by the OriginGuard construct
            self, "OriginSecret", description="Shared between CloudFront and the API: requests without it are refused",
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True, password_length=48))
        self.table = dynamodb.TableV2(
            self, "Inspections", partition_key=dynamodb.Attribute(name="day", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(), encryption=dynamodb.TableEncryptionV2.customer_managed_key(storage.inspection_key),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            time_to_live_attribute="expires_at", removal_policy=RemovalPolicy.RETAIN)
        sensors = SensorStore(storage)
        #: lambda/predict: the API's handler and the sensor feed's (sensor_feed.py) share it
        self.code = lambda_.Code.from_asset(str(ROOT / "lambda" / "predict"))
        self.function = lambda_.Function(
            self, "PredictFunction", runtime=lambda_.Runtime.PYTHON_3_11, architecture=lambda_.Architecture.X86_64,
            handler="predict_app.handler", code=self.code,
            layers=[powertools_layer(self, "PowertoolsLayer", powertools_version)], memory_size=1024,
            timeout=Duration.seconds(29), tracing=lambda_.Tracing.ACTIVE, description="IVADAS API: /predict and friends",
            log_group=logs.LogGroup(self, "PredictLogs", retention=logs.RetentionDays.THREE_MONTHS),
            environment={
                **serving.model_environment,
                "SENSOR_STORE": sensors.uri,
                "INSPECTION_LOG": "dynamodb", "INSPECTION_TABLE": self.table.table_name,
                "INSPECTION_BUCKET": storage.artifacts.bucket_name, "STORE_ANOMALOUS_IMAGES": "true",
                "INSPECTION_KMS_KEY": storage.inspection_key.key_arn,  # per object: the bucket policy wants it
                "KEEP_NORMAL_IMAGES_PERCENT": str(config.keep_normal_images_percent),
                "ORIGIN_VERIFY_SECRET_ARN": self.origin_secret.secret_arn,
                "ACCESS_CONTROL": "enforce",  # lambda/predict/access.py: the route table of groups
                "POWERTOOLS_SERVICE_NAME": "ivadas-api", "POWERTOOLS_METRICS_NAMESPACE": "IVADAS",
            },
        )
        self.function.add_to_role_policy(iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"],
                                                             resources=serving.endpoint_arns()))
        sensors.grant_read(self.function)  # GET /assets...: read what the feed wrote, nothing else of the bucket
        self._grant_inspection_log(storage)
        # kept images under inspections/, SSE-KMS with the inspection key (S3 asks KMS for a data key)
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:PutObject"], resources=[storage.artifacts.arn_for_objects(f"{INSPECTIONS_PREFIX}*")]))
        storage.grant_inspection_objects(self.function, write=True)
        self.origin_secret.grant_read(self.function)

        access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.ONE_YEAR)
        self.rest_api = apigw.RestApi(
            self, "RestApi", rest_api_name=f"{config.prefix}-api", cloud_watch_role=True,
            endpoint_types=[apigw.EndpointType.REGIONAL],
            deploy_options=apigw.StageOptions(
                stage_name="prod", throttling_rate_limit=config.api_rate_limit, throttling_burst_limit=2 * config.api_rate_limit,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False, http_method=True, ip=True, protocol=True, request_time=True, resource_path=True,
                    response_length=True, status=True, user=False),
                tracing_enabled=True, logging_level=apigw.MethodLoggingLevel.ERROR, metrics_enabled=True,
            ),
        )
        self._gateway_responses()
        validator = self.rest_api.add_request_validator("Validator", validate_request_body=True, validate_request_parameters=True)
        predict_model = self.rest_api.add_model("PredictRequest", content_type="application/json", schema=apigw.JsonSchema(
            type=apigw.JsonSchemaType.OBJECT, required=["class_name", "image_base64"],
            properties={"class_name": apigw.JsonSchema(type=apigw.JsonSchemaType.STRING, min_length=1, max_length=64),
                        "image_base64": apigw.JsonSchema(type=apigw.JsonSchemaType.STRING, min_length=1)}))
        integration = apigw.LambdaIntegration(self.function, timeout=Duration.seconds(29))
        # people sign in (Cognito); the Lambda then checks their group per route (access.py)
        self.authorizer = apigw.CognitoUserPoolsAuthorizer(self, "Authorizer", cognito_user_pools=[sign_in.pool],
                                                           results_cache_ttl=Duration.minutes(5))
        for path, methods in ROUTES.items():
            resource = self.rest_api.root.resource_for_path(path)
            for method in methods:
                options = {"request_validator": validator}
                if path not in PUBLIC_ROUTES:
                    options.update(authorizer=self.authorizer, authorization_type=apigw.AuthorizationType.COGNITO)
                if path == "predict":
                    options["request_models"] = {"application/json": predict_model}
                resource.add_method(method, integration, **options)

    def _grant_inspection_log(self, storage) -> None:
        """The inspection log: PutItem to record, Query for the history, GetItem for one inspection
        (feedback on it); with the table's key (the inspection key) only through DynamoDB."""
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["dynamodb:PutItem", "dynamodb:Query", "dynamodb:GetItem"], resources=[self.table.table_arn]))
        storage.grant_inspection_log(self.function)

    def _gateway_responses(self) -> None:
        """API Gateway's own refusals in the API's error format."""
        for response_type, status, code, message in (
            (apigw.ResponseType.BAD_REQUEST_BODY, "400", "bad_request", "$context.error.validationErrorString"),
            (apigw.ResponseType.REQUEST_TOO_LARGE, "413", "payload_too_large", "the request is larger than 10 MB"),
            (apigw.ResponseType.THROTTLED, "429", "throttled", "too many requests; retry shortly"),
            (apigw.ResponseType.UNAUTHORIZED, "401", "unauthorized", "sign in: the token is missing, expired or not from this user pool"),
            (apigw.ResponseType.ACCESS_DENIED, "403", "forbidden", "$context.error.message"),
            (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, "404", "not_found", "no route $context.httpMethod $context.path"),
            (apigw.ResponseType.WAF_FILTERED, "403", "forbidden", "call IVADAS through its public URL"),
            (apigw.ResponseType.INTEGRATION_TIMEOUT, "504", "endpoint_timeout", "the model did not answer within 29 s"),
        ):
            self.rest_api.add_gateway_response(f"Gateway{response_type.response_type.title().replace('_', '')}",
                                               type=response_type, status_code=status,
                                               templates=error_template(code, message))

"""Access control and data protection as synthesized: the user pool and its groups, the Cognito
authorizer on every human route, station keys with usage plans, the origin secret's rotation and
the regional web ACLs, the key on inspection images, least-privilege roles, and hand-written cdk-nag
acknowledgments that a new wildcard cannot slip past."""

import json

import pytest

from infra.aws.config import IvadasConfig


def resources(template_json: dict, kind: str) -> dict:
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == kind}


def one(template_json: dict, kind: str) -> dict:
    [found] = resources(template_json, kind).values()
    return found["Properties"]


def role_statements(template_json: dict, handler: str) -> list[dict]:
    functions = resources(template_json, "AWS::Lambda::Function")
    function = next(f for f in functions.values() if f["Properties"].get("Handler") == handler)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [s for p in resources(template_json, "AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]]


def actions_of(statements) -> set[str]:
    return {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


def test_a_user_pool_with_the_three_groups_admin_made_users_mfa_and_a_hosted_domain(main_template_json):
    pool = one(main_template_json, "AWS::Cognito::UserPool")
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True  # no self sign-up
    assert pool["MfaConfiguration"] == "ON" and pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12
    assert pool["UserPoolAddOns"]["AdvancedSecurityMode"] == "ENFORCED" or pool.get("UserPoolTier") == "PLUS"
    groups = {g["Properties"]["GroupName"]: g["Properties"]["Precedence"]
              for g in resources(main_template_json, "AWS::Cognito::UserPoolGroup").values()}
    assert groups == {"admin": 1, "engineer": 2, "inspector": 3}
    domain = one(main_template_json, "AWS::Cognito::UserPoolDomain")
    assert "ivadas-dev" in json.dumps(domain["Domain"])


def test_the_ui_client_uses_the_code_flow_with_pkce_and_no_secret(main_template_json):
    client = one(main_template_json, "AWS::Cognito::UserPoolClient")
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlows"] == ["code"] and client["AllowedOAuthFlowsUserPoolClient"] is True
    assert "openid" in client["AllowedOAuthScopes"]
    callback = json.dumps(client["CallbackURLs"])
    assert "https://" in callback and "DomainName" in callback  # the distribution's own URL
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    assert client["IdTokenValidity"] == 60 and client["TokenValidityUnits"]["IdToken"] == "minutes"


def test_every_human_route_has_the_cognito_authorizer_and_only_health_is_open(main_template_json):
    [authorizer] = resources(main_template_json, "AWS::ApiGateway::Authorizer").values()
    assert authorizer["Properties"]["Type"] == "COGNITO_USER_POOLS"
    [api_id] = [k for k, v in resources(main_template_json, "AWS::ApiGateway::RestApi").items()
                if v["Properties"]["Name"] == "ivadas-dev-api"]
    methods = [m["Properties"] for m in resources(main_template_json, "AWS::ApiGateway::Method").values()
               if m["Properties"]["RestApiId"] == {"Ref": api_id}]
    paths = {json.dumps(m["ResourceId"]): m for m in methods}
    assert len(methods) >= 8
    open_methods = [m for m in methods if m["AuthorizationType"] == "NONE"]
    assert len(open_methods) == 1 and open_methods[0]["HttpMethod"] == "GET"  # GET /health
    for method in methods:
        if method["AuthorizationType"] != "NONE":
            assert method["AuthorizationType"] == "COGNITO_USER_POOLS"
            assert method["AuthorizerId"] == {"Ref": next(iter(resources(main_template_json, "AWS::ApiGateway::Authorizer")))}
    assert paths
    responses = {r["Properties"]["ResponseType"]: r["Properties"] for r in resources(main_template_json, "AWS::ApiGateway::GatewayResponse").values()
                 if r["Properties"]["RestApiId"] == {"Ref": api_id}}
    assert responses["UNAUTHORIZED"]["StatusCode"] == "401" and responses["ACCESS_DENIED"]["StatusCode"] == "403"
    assert '"error"' in responses["UNAUTHORIZED"]["ResponseTemplates"]["application/json"]


def test_the_routes_without_the_authorizer_are_those_the_lambda_opens_to_anyone(main_template_json):
    """What `ivadas up --auth` copies (infra/local/signin.py): a route the Lambda's table opens to anyone
    has no authorizer on AWS (API Gateway then neither checks nor passes a token), every other has it."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambda" / "predict"))
    from access import ANYONE, minimum_for

    [api_id] = [k for k, v in resources(main_template_json, "AWS::ApiGateway::RestApi").items()
                if v["Properties"]["Name"] == "ivadas-dev-api"]
    api_resources = resources(main_template_json, "AWS::ApiGateway::Resource")

    def path(resource_id) -> str:
        if resource_id == {"Fn::GetAtt": [api_id, "RootResourceId"]}:
            return ""
        props = api_resources[resource_id["Ref"]]["Properties"]
        return f"{path(props['ParentId'])}/{props['PathPart']}"

    methods = [m["Properties"] for m in resources(main_template_json, "AWS::ApiGateway::Method").values()
               if m["Properties"]["RestApiId"] == {"Ref": api_id} and m["Properties"]["HttpMethod"] != "OPTIONS"]
    without_authorizer = {(m["HttpMethod"], path(m["ResourceId"])) for m in methods if m["AuthorizationType"] == "NONE"}
    opened = {(m["HttpMethod"], path(m["ResourceId"])) for m in methods
              if minimum_for(m["HttpMethod"], path(m["ResourceId"])) == ANYONE}
    assert without_authorizer == opened == {("GET", "/health")}


def test_the_lambda_enforces_the_route_table_on_aws(main_template_json):
    functions = resources(main_template_json, "AWS::Lambda::Function")
    predict = next(f for f in functions.values() if f["Properties"].get("Handler") == "predict_app.handler")
    assert predict["Properties"]["Environment"]["Variables"]["ACCESS_CONTROL"] == "enforce"


def test_stations_use_api_keys_bound_to_usage_plans_or_iam(main_template_json):
    apis = {k: v["Properties"]["Name"] for k, v in resources(main_template_json, "AWS::ApiGateway::RestApi").items()}
    station_api = next(k for k, name in apis.items() if name == "ivadas-dev-stations")
    methods = [m["Properties"] for m in resources(main_template_json, "AWS::ApiGateway::Method").values()
               if m["Properties"]["RestApiId"] == {"Ref": station_api}]
    assert len(methods) == 4 and all(m["HttpMethod"] == "POST" for m in methods)
    keyed = [m for m in methods if m.get("ApiKeyRequired")]
    signed = [m for m in methods if m["AuthorizationType"] == "AWS_IAM"]
    assert len(keyed) == 2 and len(signed) == 2 and not [m for m in keyed if m in signed]
    plan = one(main_template_json, "AWS::ApiGateway::UsagePlan")
    default = IvadasConfig().stations[0]
    assert plan["Quota"] == {"Limit": default.quota_per_day, "Period": "DAY"}
    assert plan["Throttle"] == {"RateLimit": default.rate_per_second, "BurstLimit": default.burst}
    assert plan["ApiStages"][0]["Stage"] == {"Ref": next(k for k, v in resources(main_template_json, "AWS::ApiGateway::Stage").items()
                                                        if v["Properties"]["StageName"] == "stations")}
    [key] = resources(main_template_json, "AWS::ApiGateway::ApiKey").values()
    assert key["Properties"]["Name"] == "ivadas-dev-line-1" and "Value" not in key["Properties"]  # generated by AWS
    key_link = one(main_template_json, "AWS::ApiGateway::UsagePlanKey")
    assert key_link["KeyType"] == "API_KEY"
    responses = {r["Properties"]["ResponseType"]: r["Properties"]["StatusCode"]
                 for r in resources(main_template_json, "AWS::ApiGateway::GatewayResponse").values()
                 if r["Properties"]["RestApiId"] == {"Ref": station_api}}
    assert responses["QUOTA_EXCEEDED"] == "429" and responses["THROTTLED"] == "429" and responses["INVALID_API_KEY"] == "403"
    # the station stage's web ACL (rate per IP, known bad inputs) refuses in the API's error format too
    templates = {r["Properties"]["ResponseType"]: r["Properties"].get("ResponseTemplates", {})
                 for r in resources(main_template_json, "AWS::ApiGateway::GatewayResponse").values()
                 if r["Properties"]["RestApiId"] == {"Ref": station_api}}
    assert responses["WAF_FILTERED"] == "403"
    assert all('"error"' in templates[kind]["application/json"] for kind in responses)


def test_stations_config_makes_one_plan_and_key_per_station():
    config = IvadasConfig(stations='[{"name": "line-1", "quotaPerDay": 100, "ratePerSecond": 0.5}, {"name": "line-2"}]')
    assert [(s.name, s.quota_per_day, s.burst) for s in config.stations] == [("line-1", 100, 1), ("line-2", 20000, 10)]
    with pytest.raises(ValueError, match="unique"):
        IvadasConfig(stations=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValueError):
        IvadasConfig(stations=[{"name": "bad name"}])


def test_the_origin_secret_rotates_through_a_function_that_moves_cloudfront_and_the_web_acl(main_template_json):
    schedule = one(main_template_json, "AWS::SecretsManager::RotationSchedule")
    assert schedule["RotationRules"]["ScheduleExpression"] == "rate(30 days)"
    functions = resources(main_template_json, "AWS::Lambda::Function")
    rotation_id = next(k for k, f in functions.items() if f["Properties"].get("Handler") == "rotate.handler")
    assert schedule["RotationLambdaARN"] == {"Fn::GetAtt": [rotation_id, "Arn"]}
    env = functions[rotation_id]["Properties"]["Environment"]["Variables"]
    assert env["ORIGIN_HEADER"] == "X-Origin-Verify" and env["WEB_ACL_RULE"] == "OriginSecretRequired"
    assert {"Ref": next(iter(resources(main_template_json, "AWS::CloudFront::Distribution")))} == env["DISTRIBUTION_ID"]
    statements = role_statements(main_template_json, "rotate.handler")
    assert {"cloudfront:GetDistributionConfig", "cloudfront:UpdateDistribution", "wafv2:UpdateWebACL",
            "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"} <= actions_of(statements)
    for statement in statements:
        if "cloudfront:UpdateDistribution" in statement["Action"]:
            assert "distribution/" in json.dumps(statement["Resource"])  # this distribution, not *
    # the API Lambda reads the version list to accept the pending and (for a while) the previous value
    predict = role_statements(main_template_json, "predict_app.handler")
    assert "secretsmanager:ListSecretVersionIds" in actions_of(predict)
    # README: rotate by hand with `aws secretsmanager rotate-secret --secret-id <OriginSecretArn output>`
    [secret_id] = resources(main_template_json, "AWS::SecretsManager::Secret")
    assert main_template_json["Outputs"]["OriginSecretArn"]["Value"] == {"Ref": secret_id}


def test_the_web_acl_follows_the_secret_every_minute_with_the_lambdas_grace(main_template_json):
    functions = resources(main_template_json, "AWS::Lambda::Function")
    rotation_id = next(k for k, f in functions.items() if f["Properties"].get("Handler") == "rotate.handler")
    rotation_env = functions[rotation_id]["Properties"]["Environment"]["Variables"]
    predict_env = next(f for f in functions.values() if f["Properties"].get("Handler") == "predict_app.handler")[
        "Properties"]["Environment"]["Variables"]
    grace = str(IvadasConfig().origin_secret_grace_minutes * 60)
    assert rotation_env["ORIGIN_SECRET_GRACE_S"] == predict_env["ORIGIN_SECRET_GRACE_S"] == grace == "1800"
    [secret_id] = resources(main_template_json, "AWS::SecretsManager::Secret")
    assert rotation_env["SECRET_ARN"] == predict_env["ORIGIN_VERIFY_SECRET_ARN"] == {"Ref": secret_id}
    rules = [r["Properties"] for r in resources(main_template_json, "AWS::Events::Rule").values()
             if any(t["Arn"] == {"Fn::GetAtt": [rotation_id, "Arn"]} for t in r["Properties"].get("Targets", []))]
    [rule] = rules
    assert rule["ScheduleExpression"] == "rate(1 minute)" and rule["State"] == "ENABLED"
    [target] = rule["Targets"]
    assert "Step" not in json.loads(target["Input"])  # not a rotation step: the function keeps the web ACL in step
    permissions = [p["Properties"] for p in resources(main_template_json, "AWS::Lambda::Permission").values()
                   if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [rotation_id, "Arn"]}
                   and p["Properties"]["Principal"] == "events.amazonaws.com"]
    assert len(permissions) == 1 and "SourceArn" in permissions[0]
    statements = role_statements(main_template_json, "rotate.handler")
    listing = [st for st in statements if "secretsmanager:ListSecretVersionIds" in json.dumps(st["Action"])]
    assert listing and all(st["Resource"] == {"Ref": secret_id} for st in listing)


def test_a_regional_web_acl_on_the_api_stage_blocks_requests_without_the_origin_header(main_template_json):
    acls = {v["Properties"]["Name"]: (k, v["Properties"]) for k, v in resources(main_template_json, "AWS::WAFv2::WebACL").items()}
    acl_id, acl = acls["ivadas-dev-api-origin"]
    assert acl["Scope"] == "REGIONAL"
    [rule] = acl["Rules"]
    assert rule["Name"] == "OriginSecretRequired" and rule["Action"] == {"Block": {}}
    match = rule["Statement"]["NotStatement"]["Statement"]["ByteMatchStatement"]
    assert match["FieldToMatch"] == {"SingleHeader": {"Name": "x-origin-verify"}} and match["PositionalConstraint"] == "EXACTLY"
    assert "resolve:secretsmanager" in json.dumps(match["SearchString"])
    associations = [a["Properties"] for a in resources(main_template_json, "AWS::WAFv2::WebACLAssociation").values()]
    stages = {v["Properties"]["StageName"]: k for k, v in resources(main_template_json, "AWS::ApiGateway::Stage").items()}
    api_association = next(a for a in associations if a["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]})
    assert stages["prod"] in json.dumps(api_association["ResourceArn"])
    station_acl_id, station_acl = acls["ivadas-dev-stations"]
    assert station_acl["Scope"] == "REGIONAL" and any("RateBasedStatement" in r["Statement"] for r in station_acl["Rules"])
    assert any(a["WebACLArn"] == {"Fn::GetAtt": [station_acl_id, "Arn"]} and stages["stations"] in json.dumps(a["ResourceArn"])
               for a in associations)


def keys_by_description(template_json: dict) -> dict[str, str]:
    return {v["Properties"]["Description"]: k for k, v in resources(template_json, "AWS::KMS::Key").items()}


def test_inspection_data_has_a_key_of_its_own_and_the_project_key_keeps_models_and_datasets(main_template_json):
    keys = keys_by_description(main_template_json)
    project = keys["IVADAS datasets, models and pipeline artifacts"]
    inspection = keys["IVADAS inspection data: kept inspection images and the inspection log"]
    for key_id in (project, inspection):
        key = main_template_json["Resources"][key_id]
        assert key["Properties"]["EnableKeyRotation"] is True and key["DeletionPolicy"] == "Retain"
        # the key policy names the account (IAM policies decide who in it), nobody else, no wildcard principal
        [statement] = key["Properties"]["KeyPolicy"]["Statement"]
        assert statement["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"} and statement["Effect"] == "Allow"
    buckets = resources(main_template_json, "AWS::S3::Bucket")
    for bucket in buckets.values():  # both buckets' default: the project key
        if "BucketEncryption" in bucket["Properties"] and "aws:kms" in json.dumps(bucket["Properties"]["BucketEncryption"]):
            [sse] = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            assert sse["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": [project, "Arn"]}}
            assert sse["BucketKeyEnabled"] is True
    [table] = resources(main_template_json, "AWS::DynamoDB::GlobalTable").values()
    [replica] = table["Properties"]["Replicas"]
    assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    assert replica["SSESpecification"] == {"KMSMasterKeyId": {"Fn::GetAtt": [inspection, "Arn"]}}
    functions = resources(main_template_json, "AWS::Lambda::Function")
    predict = next(f for f in functions.values() if f["Properties"].get("Handler") == "predict_app.handler")
    assert predict["Properties"]["Environment"]["Variables"]["INSPECTION_KMS_KEY"] == {"Fn::GetAtt": [inspection, "Arn"]}
    deploy = next(f for f in functions.values() if f["Properties"].get("Handler") == "deploy_app.handler")
    deploy_env = deploy["Properties"]["Environment"]["Variables"]
    assert deploy_env["DATA_CAPTURE_KMS_KEY_ID"] == {"Fn::GetAtt": [inspection, "Arn"]}  # captured requests
    assert deploy_env["ENDPOINT_VOLUME_KMS_KEY_ID"] == {"Fn::GetAtt": [project, "Arn"]}  # the model on the volume


@pytest.mark.parametrize("prefix", ["inspections/", "data-capture/"])
def test_the_artifacts_bucket_refuses_inspection_data_written_without_the_inspection_key(main_template_json, prefix):
    """Kept images and the endpoints' captured requests: a PutObject under either prefix that names
    another key (the project key, the bucket's default) or none is refused, whoever makes it."""
    from tests.infra.iam_replay import bucket_policy_statements, denied_by, request
    from tests.infra.test_predict_permissions import artifacts_bucket, inspection_key

    bucket, project_key, bucket_id = artifacts_bucket(main_template_json, logical_id=True)
    key = inspection_key(main_template_json)
    policy = bucket_policy_statements(main_template_json, bucket_id)
    written = f"arn:aws:s3:::{bucket}/{prefix}2026/12/02/object"
    named = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    assert denied_by(policy, request("s3:PutObject", written))  # no key named: the bucket's default would apply
    assert denied_by(policy, request("s3:PutObject", written, **{named: project_key}))
    assert not denied_by(policy, request("s3:PutObject", written, **{named: key}))
    # everything else in the bucket keeps the project key as its default
    assert not denied_by(policy, request("s3:PutObject", f"arn:aws:s3:::{bucket}/pipelines/model.tar.gz"))
    denies = [s for s in policy if s["Effect"] == "Deny" and s["Action"] == ["s3:PutObject"]]
    assert all(s["Condition"] == {"StringNotEquals": {named: [key]}} for s in denies)


def test_the_endpoints_write_their_capture_with_the_inspection_key_and_only_read_with_the_project_key(
        main_template_json, monkeypatch):
    """SageMaker writes an endpoint's data capture as the model's execution role, SSE-KMS with the
    KmsKeyId of the endpoint config's DataCaptureConfig (what the deploy Lambda sends, replayed on
    the strict fake): the role allows that write and the bucket policy accepts it; the role reads
    the model bundles with the project key (decrypt) and can no longer encrypt with it."""
    from pipelines.registry import APPROVED, SageMakerRegistry
    from tests.infra.deployment_harness import World
    from tests.infra.iam_replay import bucket_policy_statements, denied_by, permitted, policy_statements, request
    from tests.infra.strict_aws import REGION
    from tests.infra.test_predict_permissions import artifacts_bucket, inspection_key

    world = World(main_template_json, monkeypatch)
    registry = SageMakerRegistry(client=world.console)
    registry.register("ivadas-dev-training-patchcore", "s3://artifacts/model-1.tar.gz", {}, {}, image_uri="ivadas-endpoint:1")
    registry.set_status("ivadas-dev-training-patchcore", 1, APPROVED, "reviewed", by="qa")
    world.settle()
    endpoint = world.fake.endpoints["ivadas-dev-patchcore"]
    config = world.fake.configs[endpoint["EndpointConfigName"]]
    capture = config["DataCaptureConfig"]
    model = world.fake.models[config["ProductionVariants"][0]["ModelName"]]
    role_id = model["ExecutionRoleArn"].rsplit("/", 1)[1]
    role = policy_statements(main_template_json, role_id)

    bucket, project_key, bucket_id = artifacts_bucket(main_template_json, logical_id=True)
    key = inspection_key(main_template_json)
    assert capture["KmsKeyId"] == key
    destination = capture["DestinationS3Uri"].removeprefix("s3://")
    assert destination.startswith(f"{bucket}/data-capture/")
    captured = f"arn:aws:s3:::{destination}/ivadas-dev-patchcore/AllTraffic/2026/12/02/00/00-00-000-request.jsonl"
    via_s3 = {"kms__ViaService": f"s3.{REGION}.amazonaws.com"}
    write = [request("s3:PutObject", captured, **{"s3:x-amz-server-side-encryption-aws-kms-key-id": key}),
             request("kms:GenerateDataKey", key, **via_s3)]
    assert [str(check) for check in write if not permitted(role, check)] == []
    assert not denied_by(bucket_policy_statements(main_template_json, bucket_id), write[0])
    # the bundle it serves: read, with the project key
    assert permitted(role, request("s3:GetObject", f"arn:aws:s3:::{bucket}/pipelines/execution/model.tar.gz"))
    assert permitted(role, request("kms:Decrypt", project_key, **via_s3))
    for refused in ("kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:Encrypt", "kms:ReEncryptFrom",
                    "kms:ReEncryptTo"):
        assert not permitted(role, request(refused, project_key, **via_s3)), refused
    assert not permitted(role, request("s3:PutObject", f"arn:aws:s3:::{bucket}/pipelines/execution/model.tar.gz"))


#: who may use the inspection key, for what, through which service; every other role: nothing
INSPECTION_KEY_USERS = {
    "predict_app.handler": {("kms:Decrypt", "s3"), ("kms:GenerateDataKey", "s3"), ("kms:Decrypt", "dynamodb")},
    "sensor_feed.handler": {("kms:Decrypt", "dynamodb")},
    "ServingModelRole": {("kms:GenerateDataKey", "s3")},  # the endpoints write their data capture
    "DriftMonitoringJobRole": {("kms:Decrypt", "dynamodb"), ("kms:Decrypt", "s3")},  # the log and the data capture
}
#: AWS managed policies the stack attaches; none allows a KMS action
MANAGED_POLICIES = ("service-role/AWSLambdaBasicExecutionRole", "service-role/AmazonAPIGatewayPushToCloudWatchLogs")


def test_only_the_roles_that_record_read_or_monitor_inspections_may_use_the_inspection_key(main_template_json):
    from tests.infra.deployment_harness import Resolver
    from tests.infra.iam_replay import _normalized, permitted, policy_statements, request
    from tests.infra.strict_aws import REGION

    template = main_template_json
    resolve = Resolver(template)
    inspection = keys_by_description(template)["IVADAS inspection data: kept inspection images and the inspection log"]
    key_arn = resolve({"Fn::GetAtt": [inspection, "Arn"]})
    functions = resources(template, "AWS::Lambda::Function")
    role_names = {f["Properties"]["Role"]["Fn::GetAtt"][0]: f["Properties"].get("Handler") for f in functions.values()
                  if isinstance(f["Properties"].get("Role"), dict) and "Fn::GetAtt" in f["Properties"]["Role"]}
    usage = {}
    for role_id, role in resources(template, "AWS::IAM::Role").items():
        for managed in role["Properties"].get("ManagedPolicyArns", []):
            assert json.dumps(managed).endswith(tuple(f'{name}"]]}}' for name in MANAGED_POLICIES) +
                                                tuple(f'{name}"}}' for name in MANAGED_POLICIES)), (role_id, managed)
        statements = policy_statements(template, role_id) + [
            _normalized(s, resolve) for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        used = {(action, service) for action in ("kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:ReEncryptFrom",
                                                 "kms:CreateGrant")
                for service in ("s3", "dynamodb", "sqs", "sagemaker", None)
                if permitted(statements, request(action, key_arn, **({"kms__ViaService": f"{service}.{REGION}.amazonaws.com"}
                                                                     if service else {})))}
        if used:
            name = role_names.get(role_id) or next(prefix for prefix in INSPECTION_KEY_USERS if role_id.startswith(prefix))
            usage[name] = used
    assert usage == INSPECTION_KEY_USERS


def test_the_predict_role_records_and_queries_and_puts_images_nothing_more(main_template_json):
    statements = role_statements(main_template_json, "predict_app.handler")
    dynamo = {a for a in actions_of(statements) if a.startswith("dynamodb:")}
    assert dynamo == {"dynamodb:PutItem", "dynamodb:Query", "dynamodb:GetItem"}
    # the images it records: put only (reading one back is the feedback route's own grant, on *.img under a day)
    s3 = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
          if a.startswith("s3:") and '"/inspections/*"' in json.dumps(s["Resource"])}
    assert s3 == {"s3:PutObject"}
    kms = [s for s in statements if any(a.startswith("kms:") for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))]
    assert all("kms:ViaService" in json.dumps(s.get("Condition", {})) for s in kms)
    assert not {a for a in actions_of(kms) if "*" in a}  # no ReEncrypt*, GenerateDataKey*


def test_the_deploy_function_may_only_decrypt_with_the_key(main_template_json):
    statements = role_statements(main_template_json, "deploy_app.handler")
    kms = {a for a in actions_of(statements) if a.startswith("kms:")}
    # Decrypt (reading bundles); CreateGrant/DescribeKey only as SageMaker's grant for endpoint volumes
    assert kms <= {"kms:Decrypt", "kms:CreateGrant", "kms:DescribeKey"} and "kms:Decrypt" in kms
    for statement in statements:
        if "kms:CreateGrant" in json.dumps(statement["Action"]):
            assert statement["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_the_ui_is_told_how_to_sign_in_and_may_talk_to_cognito(main_template_json):
    rendered = json.dumps(main_template_json)
    assert "oauth2/authorize" in rendered and "oauth2/token" in rendered
    policy = one(main_template_json, "AWS::CloudFront::ResponseHeadersPolicy")
    csp = json.dumps(policy["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]["ContentSecurityPolicy"])
    assert "amazoncognito.com" in csp and "frame-ancestors 'none'" in csp

"""Template assertions per stack: the resources and the properties that matter."""

import json

from aws_cdk.assertions import Match

from infra.aws.config import IvadasConfig


def resources(template, kind):
    return template.find_resources(kind)


def test_buckets_are_encrypted_private_tls_only_and_versioned(main_template):
    buckets = resources(main_template, "AWS::S3::Bucket")
    assert len(buckets) == 4  # access logs, data, artifacts, site
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    kms_buckets = [b for b in buckets.values() if "aws:kms" in json.dumps(b["Properties"]["BucketEncryption"])]
    assert len(kms_buckets) == 2 and all(b["Properties"]["VersioningConfiguration"]["Status"] == "Enabled" for b in kms_buckets)
    assert any(r.get("Prefix") == "inspections/" for b in kms_buckets for r in b["Properties"]["LifecycleConfiguration"]["Rules"])
    policies = resources(main_template, "AWS::S3::BucketPolicy")
    assert len(policies) == 4
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements)


def test_pipeline_and_model_package_groups(main_template):
    groups = resources(main_template, "AWS::SageMaker::ModelPackageGroup")
    assert sorted(g["Properties"]["ModelPackageGroupName"] for g in groups.values()) == [
        "ivadas-dev-training-patchcore", "ivadas-dev-training-softpatch"]
    [pipeline] = resources(main_template, "AWS::SageMaker::Pipeline").values()
    assert pipeline["Properties"]["PipelineName"] == "ivadas-dev-training"
    body, variables = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    definition = json.loads(body)
    assert [s["Name"] for s in definition["Steps"]] == ["Preprocess", "Train", "Evaluate", "QualityGate"]
    assert "${TrainingImageUri}" in body and "${PipelineRoleArn}" in body and "placeholder" not in body
    assert set(variables) == {"TrainingImageUri", "EndpointImageUri", "PipelineRoleArn", "ArtifactsBucket", "DataBucket"}
    gate = next(p for p in definition["Parameters"] if p["Name"] == "AurocGate")
    assert gate["DefaultValue"] == 0.9


def test_nothing_is_deployed_before_approval_and_approvals_drive_the_deploy_function(main_template):
    assert resources(main_template, "AWS::SageMaker::Endpoint") == {}
    rules = resources(main_template, "AWS::Events::Rule")
    approval = next(r for r in rules.values() if r["Properties"]["EventPattern"]["detail-type"] == ["SageMaker Model Package State Change"])
    assert approval["Properties"]["EventPattern"]["detail"] == {
        "ModelPackageGroupName": ["ivadas-dev-training-patchcore", "ivadas-dev-training-softpatch"],
        "ModelApprovalStatus": ["Approved", "Rejected"]}
    assert approval["Properties"]["EventPattern"]["source"] == ["aws.sagemaker"]
    functions = resources(main_template, "AWS::Lambda::Function")
    deploy = next(f for f in functions.values() if f["Properties"]["Handler"] == "deploy_app.handler")
    env = deploy["Properties"]["Environment"]["Variables"]
    assert json.loads(env["ROLLBACK_ALARMS"]) == {"patchcore": ["ivadas-dev-patchcore-5xx", "ivadas-dev-patchcore-model-latency"],
                                                  "softpatch": ["ivadas-dev-softpatch-5xx", "ivadas-dev-softpatch-model-latency"]}
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in resources(main_template, "AWS::CloudWatch::Alarm").values()
              if isinstance(a["Properties"].get("AlarmName"), str)}
    assert alarms["ivadas-dev-patchcore-5xx"]["MetricName"] == "Invocation5XXErrors"
    assert alarms["ivadas-dev-softpatch-model-latency"]["MetricName"] == "ModelLatency"


def test_predict_function_may_invoke_only_the_two_endpoints(main_template):
    functions = resources(main_template, "AWS::Lambda::Function")
    predict_id = next(k for k, f in functions.items() if f["Properties"]["Handler"] == "predict_app.handler")
    role_ref = functions[predict_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = [p for p in resources(main_template, "AWS::IAM::Policy").values() if {"Ref": role_ref} in p["Properties"]["Roles"]]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    invoke = [s for s in statements if "sagemaker:InvokeEndpoint" in json.dumps(s["Action"])]
    assert len(invoke) == 1
    rendered = json.dumps(invoke[0]["Resource"])
    assert "endpoint/ivadas-dev-patchcore" in rendered and "endpoint/ivadas-dev-softpatch" in rendered and "*" not in rendered
    env = functions[predict_id]["Properties"]["Environment"]["Variables"]
    assert json.loads(env["ENDPOINT_NAMES"]) == {"patchcore": "ivadas-dev-patchcore", "softpatch": "ivadas-dev-softpatch"}
    assert "ORIGIN_VERIFY_SECRET_ARN" in env


def test_api_stage_throttling_logging_tracing_and_validation(main_template):
    main_template.has_resource_properties("AWS::ApiGateway::Stage", {
        "TracingEnabled": True,
        "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
        "MethodSettings": Match.array_with([Match.object_like({"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100})]),
    })
    main_template.resource_count_is("AWS::ApiGateway::RequestValidator", 1)
    main_template.has_resource_properties("AWS::ApiGateway::GatewayResponse", {"ResponseType": "BAD_REQUEST_BODY", "StatusCode": "400"})
    main_template.has_resource_properties("AWS::DynamoDB::GlobalTable", {
        "SSESpecification": Match.object_like({"SSEEnabled": True, "SSEType": "KMS"}),
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
    })


def test_one_distribution_with_oac_api_behaviours_security_headers_and_waf(main_template):
    [distribution] = resources(main_template, "AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    assert sorted(b["PathPattern"] for b in config["CacheBehaviors"]) == ["/health", "/inspections*", "/models", "/predict*"]
    assert all(b["ResponseHeadersPolicyId"] for b in config["CacheBehaviors"] + [config["DefaultCacheBehavior"]])
    s3_origin = next(o for o in config["Origins"] if "S3OriginConfig" in o)
    assert "OriginAccessControlId" in s3_origin
    api_origin = next(o for o in config["Origins"] if "CustomOriginConfig" in o)
    assert api_origin["OriginCustomHeaders"][0]["HeaderName"] == "X-Origin-Verify"
    assert "resolve:secretsmanager" in json.dumps(api_origin["OriginCustomHeaders"][0]["HeaderValue"])
    assert config["WebACLId"]  # the edge stack's ACL, through a cross-region reference
    main_template.resource_count_is("AWS::CloudFront::OriginAccessControl", 1)
    main_template.has_resource_properties("AWS::CloudFront::ResponseHeadersPolicy", {"ResponseHeadersPolicyConfig": Match.object_like({
        "SecurityHeadersConfig": Match.object_like({"StrictTransportSecurity": Match.any_value(), "FrameOptions": Match.any_value()})})})


def test_waf_is_cloudfront_scoped_with_managed_rules_rate_limit_and_scoped_body_size(edge_template):
    [acl] = edge_template.find_resources("AWS::WAFv2::WebACL").values()
    props = acl["Properties"]
    assert props["Scope"] == "CLOUDFRONT"
    rules = {r["Name"]: r for r in props["Rules"]}
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet", "AWSManagedRulesAmazonIpReputationList",
            "RatePerIp", "BodySizeOutsidePredict"} <= set(rules)
    common = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert common["RuleActionOverrides"] == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    body_rule = rules["BodySizeOutsidePredict"]
    assert body_rule["Action"] == {"Block": {}}
    statements = body_rule["Statement"]["AndStatement"]["Statements"]
    assert statements[0]["SizeConstraintStatement"]["Size"] == 8192
    assert statements[1]["NotStatement"]["Statement"]["ByteMatchStatement"]["SearchString"] == "/predict"
    assert rules["RatePerIp"]["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"


def test_monitoring_dashboard_and_alarms_to_sns(main_template):
    main_template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    main_template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "qa@example.com"})
    alarms = resources(main_template, "AWS::CloudWatch::Alarm").values()
    assert len(alarms) >= 8 and all(a["Properties"].get("AlarmActions") for a in alarms)
    [dashboard] = resources(main_template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("Invocations", "ModelLatency", "Invocation5XXErrors", "CPUUtilization", "Anomalies", "ExecutionFailed"):
        assert metric in body


def test_config_is_validated_in_one_place():
    import pytest
    from pydantic import ValidationError

    assert IvadasConfig(classes="a, b").classes == ("a", "b")
    for bad in ({"endpoint_instance_type": "c5.large"}, {"default_model": "yolo"}, {"alarm_email": "nobody"},
                {"environment": "Prod!"}, {"auroc_gate": 2}, {"surprise": 1}):
        with pytest.raises(ValidationError):
            IvadasConfig(**bad)

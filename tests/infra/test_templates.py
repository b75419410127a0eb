"""Template assertions per stack: the resources and the properties that matter."""

import json

from aws_cdk.assertions import Match

from inference.kinds import MODEL_KINDS
from infra.aws.config import IvadasConfig

CONFIG = IvadasConfig(account="123456789012", alarm_email="qa@example.com")


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


def test_pipeline_and_one_model_package_group_per_registered_kind(main_template):
    groups = resources(main_template, "AWS::SageMaker::ModelPackageGroup")
    assert sorted(g["Properties"]["ModelPackageGroupName"] for g in groups.values()) == sorted(
        CONFIG.model_package_group(kind) for kind in MODEL_KINDS)
    assert "ivadas-dev-training-isolation-forest" in CONFIG.model_package_group("isolation_forest")  # SageMaker-safe
    [pipeline] = resources(main_template, "AWS::SageMaker::Pipeline").values()
    assert pipeline["Properties"]["PipelineName"] == "ivadas-dev-training"
    body, variables = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    definition = json.loads(body)
    assert [s["Name"] for s in definition["Steps"]] == ["Preprocess", "Train", "Evaluate", "QualityGate"]
    assert "${TrainingImageUri}" in body and "${PipelineRoleArn}" in body and "placeholder" not in body
    assert set(variables) == {"TrainingImageUri", "EndpointImageUri", "PipelineRoleArn", "ArtifactsBucket", "DataBucket",
                              "MlflowTrackingServerArn"}
    gate = next(p for p in definition["Parameters"] if p["Name"] == "AurocGate")
    assert gate["DefaultValue"] == 0.9
    group_ids = set(groups)
    assert set(pipeline["DependsOn"]) >= group_ids  # the groups exist before any run registers into them


def test_nothing_is_deployed_before_approval_and_every_kind_has_its_triggers(main_template):
    assert resources(main_template, "AWS::SageMaker::Endpoint") == {}
    rules = [r["Properties"] for r in resources(main_template, "AWS::Events::Rule").values()
             if "SqsParameters" in r["Properties"]["Targets"][0]]  # into the deployment queue (not the origin secret's)
    for kind in MODEL_KINDS:
        into_kind = [r for r in rules if r["Targets"][0]["SqsParameters"]["MessageGroupId"] == kind]
        patterns = {r.get("EventPattern", {}).get("detail-type", ["schedule"])[0]: r for r in into_kind}
        approvals = patterns["SageMaker Model Package State Change"]["EventPattern"]
        assert approvals["source"] == ["aws.sagemaker"]
        assert approvals["detail"] == {"ModelPackageGroupName": [CONFIG.model_package_group(kind)],
                                       "ModelApprovalStatus": ["Approved", "Rejected"]}
        states = patterns["SageMaker Endpoint State Change"]["EventPattern"]["detail"]
        assert states["EndpointName"] == [CONFIG.endpoint_name(kind)] and "IN_SERVICE" in states["EndpointStatus"]
        assert patterns["schedule"]["ScheduleExpression"] == f"rate({CONFIG.reconcile_minutes} minutes)"
        assert json.loads(patterns["schedule"]["Targets"][0]["Input"])["detail"] == {"kind": kind}
    functions = resources(main_template, "AWS::Lambda::Function")
    deploy = next(f for f in functions.values() if f["Properties"]["Handler"] == "deploy_app.handler")
    targets = json.loads(deploy["Properties"]["Environment"]["Variables"]["DEPLOY_TARGETS"])
    assert targets["patchcore"] == {"group": "ivadas-dev-training-patchcore", "endpoint": "ivadas-dev-patchcore",
                                    "alarms": ["ivadas-dev-patchcore-5xx", "ivadas-dev-patchcore-model-latency"],
                                    "instance_type": CONFIG.endpoint_instance_type, "volume_key": True,
                                    "invocations_per_instance": CONFIG.endpoint_invocations_per_instance}
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in resources(main_template, "AWS::CloudWatch::Alarm").values()
              if isinstance(a["Properties"].get("AlarmName"), str)}
    for kind, target in targets.items():
        errors, latency = target["alarms"]
        assert alarms[errors]["MetricName"] == "Invocation5XXErrors" and alarms[latency]["MetricName"] == "ModelLatency"


def test_deployments_are_queued_per_kind_with_a_dead_letter_queue_and_alarms(main_template):
    queues = resources(main_template, "AWS::SQS::Queue")
    [queue] = [q["Properties"] for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    dead_letters_id, attribute = queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"]
    assert queue["FifoQueue"] is True and queue["ContentBasedDeduplication"] is True
    # a FIFO queue's dead letters must go to a FIFO queue
    assert attribute == "Arn" and queues[dead_letters_id]["Properties"]["FifoQueue"] is True
    # a busy endpoint's message is retried for longer than the longest deployment before it dead-letters
    assert queue["VisibilityTimeout"] * queue["RedrivePolicy"]["maxReceiveCount"] >= CONFIG.deployment_timeout_seconds + 1800
    assert queue["VisibilityTimeout"] >= 6 * CONFIG.deploy_lambda_timeout_seconds
    [mapping] = resources(main_template, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in resources(main_template, "AWS::CloudWatch::Alarm").values()
              if isinstance(a["Properties"].get("AlarmName"), str)}
    dead = alarms["ivadas-dev-deployment-dead-letters"]
    assert dead["MetricName"] == "ApproximateNumberOfMessagesVisible" and dead["Threshold"] == 1
    assert dead["Dimensions"][0]["Value"] == {"Fn::GetAtt": [dead_letters_id, "QueueName"]}
    for name in ("deployment-rolled-back", "deployment-failed", "deployment-errors", "served-version-mismatch"):
        assert alarms[f"ivadas-dev-{name}"]["AlarmActions"], name


def test_predict_function_may_invoke_only_the_endpoints_of_registered_kinds(main_template):
    functions = resources(main_template, "AWS::Lambda::Function")
    predict_id = next(k for k, f in functions.items() if f["Properties"]["Handler"] == "predict_app.handler")
    role_ref = functions[predict_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = [p for p in resources(main_template, "AWS::IAM::Policy").values() if {"Ref": role_ref} in p["Properties"]["Roles"]]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    invoke = [s for s in statements if "sagemaker:InvokeEndpoint" in json.dumps(s["Action"])]
    assert len(invoke) == 1
    rendered = json.dumps(invoke[0]["Resource"])
    assert all(f"endpoint/{CONFIG.endpoint_name(kind)}" in rendered for kind in MODEL_KINDS) and "*" not in rendered
    env = functions[predict_id]["Properties"]["Environment"]["Variables"]
    assert json.loads(env["ENDPOINT_NAMES"]) == {kind: CONFIG.endpoint_name(kind) for kind in MODEL_KINDS}
    assert "ORIGIN_VERIFY_SECRET_ARN" in env
    # every anomalous image is kept, and the configured sample of normal ones (missed defects can be reported)
    assert (env["STORE_ANOMALOUS_IMAGES"], float(env["KEEP_NORMAL_IMAGES_PERCENT"])) == ("true", CONFIG.keep_normal_images_percent)


def test_api_stage_throttling_logging_tracing_and_validation(main_template):
    main_template.has_resource_properties("AWS::ApiGateway::Stage", {
        "TracingEnabled": True,
        "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
        "MethodSettings": Match.array_with([Match.object_like({"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100})]),
    })
    main_template.resource_count_is("AWS::ApiGateway::RequestValidator", 2)  # the API's and the station API's
    main_template.has_resource_properties("AWS::ApiGateway::GatewayResponse", {"ResponseType": "BAD_REQUEST_BODY", "StatusCode": "400"})
    main_template.has_resource_properties("AWS::DynamoDB::GlobalTable", {
        "SSESpecification": Match.object_like({"SSEEnabled": True, "SSEType": "KMS"}),
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
    })


def test_one_distribution_with_oac_api_behaviours_security_headers_and_waf(main_template):
    [distribution] = resources(main_template, "AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    assert sorted(b["PathPattern"] for b in config["CacheBehaviors"]) == [
        "/assets*", "/datasets*", "/feedback", "/health", "/inspections*", "/models*", "/monitoring*", "/predict*", "/trainings*",
        "/trials*", "/versions*"]
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


def test_the_pipeline_role_may_record_its_experiment(main_template):
    """The definition's PipelineExperimentConfig makes SageMaker create an experiment, a trial per
    execution and trial components with the pipeline's role."""
    [pipeline] = resources(main_template, "AWS::SageMaker::Pipeline").values()
    role = pipeline["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    statements = [s for p in resources(main_template, "AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    granted = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"sagemaker:CreateExperiment", "sagemaker:CreateTrial", "sagemaker:CreateTrialComponent",
            "sagemaker:AssociateTrialComponent", "sagemaker:DescribeExperiment", "sagemaker:DescribeTrial"} <= granted
    experiment = next(s for s in statements if "sagemaker:CreateExperiment" in s["Action"])
    assert "experiment/ivadas-dev-training" in json.dumps(experiment["Resource"])


def test_the_predict_lambda_outlives_its_longest_endpoint_call(main_template):
    """Its endpoint calls take their read timeout from the remaining time (one attempt); the function's
    own timeout is API Gateway's, so the JSON 504 is written before either gives up."""
    functions = resources(main_template, "AWS::Lambda::Function")
    predict = next(f for f in functions.values() if f["Properties"]["Handler"] == "predict_app.handler")["Properties"]
    assert predict["Timeout"] == 29
    for method in resources(main_template, "AWS::ApiGateway::Method").values():
        assert method["Properties"]["Integration"]["TimeoutInMillis"] == 29_000

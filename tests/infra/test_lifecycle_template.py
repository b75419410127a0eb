"""The template's presigned-upload path and pipeline-start permission for datasets and trainings
from the browser (infra/aws/constructs/lifecycle.py)."""

from __future__ import annotations

import json


def resources(template_json: dict, kind: str) -> dict:
    return {name: r for name, r in template_json["Resources"].items() if r["Type"] == kind}


def predict_function(template_json: dict) -> tuple[str, dict]:
    functions = resources(template_json, "AWS::Lambda::Function")
    name, function = next((n, f) for n, f in functions.items() if f["Properties"].get("Handler") == "predict_app.handler"
                          and "DATASET_STORE" in f["Properties"].get("Environment", {}).get("Variables", {}))
    return name, function


def role_statements(template_json: dict, function: dict) -> list[dict]:
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = []
    for policy in resources(template_json, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def actions(statement: dict) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else value


def text(value) -> str:
    return json.dumps(value, sort_keys=True)


def test_the_api_may_put_objects_only_under_datasets(main_template_json):
    _, function = predict_function(main_template_json)
    variables = function["Properties"]["Environment"]["Variables"]
    assert "Data" in text(variables["DATASET_STORE"]) and variables["MODEL_REGISTRY"] == "sagemaker"
    puts = [s for s in role_statements(main_template_json, function) if "s3:PutObject" in actions(s) or "s3:*" in actions(s)]
    assert puts, "the API Lambda signs upload forms with its own permission: it needs s3:PutObject"
    data_puts = [s for s in puts if "StorageData" in text(s["Resource"])]
    assert data_puts, "no s3:PutObject on the data bucket"
    for statement in data_puts:
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for target in targets:
            assert text(target).endswith('"/datasets/*"]]}'), f"s3:PutObject beyond datasets/: {text(target)}"
    lists = [s for s in role_statements(main_template_json, function) if "s3:ListBucket" in actions(s) and "StorageData" in text(s["Resource"])]
    assert any(s.get("Condition", {}).get("StringLike", {}).get("s3:prefix") == ["datasets/*"] for s in lists)


def test_the_data_bucket_takes_form_posts_from_the_ui_origin_only(main_template_json):
    cors = [r for r in main_template_json["Resources"].values() if r["Type"] == "Custom::AWS"
            and "putBucketCors" in text(r["Properties"].get("Create"))]
    assert len(cors) == 1
    create = text(cors[0]["Properties"]["Create"])
    # the origin is the distribution's own domain, resolved at deploy time; only POST (the form upload)
    assert "WebDistribution" in create and "DomainName" in create
    assert '\\"AllowedMethods\\":[\\"POST\\"]' in create and '\\"AllowedOrigins\\":[\\"https://' in create
    assert "*" not in create.split('AllowedOrigins')[1].split("]")[0]
    policy = next(r for r in resources(main_template_json, "AWS::IAM::Policy").values()
                  if "s3:PutBucketCORS" in text(r["Properties"]["PolicyDocument"]))
    statement = policy["Properties"]["PolicyDocument"]["Statement"][0]
    assert actions(statement) == ["s3:PutBucketCORS"] or statement["Action"] == "s3:PutBucketCORS"
    assert "StorageData" in text(statement["Resource"])


def test_the_api_may_start_only_its_own_pipeline(main_template_json):
    _, function = predict_function(main_template_json)
    statements = role_statements(main_template_json, function)
    starts = [s for s in statements if "sagemaker:StartPipelineExecution" in actions(s)]
    assert len(starts) == 1 and actions(starts[0]) == ["sagemaker:StartPipelineExecution"] or \
        starts[0]["Action"] == "sagemaker:StartPipelineExecution"
    resource = text(starts[0]["Resource"]).rstrip('"]}')
    assert resource.endswith(":pipeline/ivadas-dev-training") and "*" not in resource
    assert not any("sagemaker:*" in actions(s) for s in statements)
    reads = next(s for s in statements if "sagemaker:ListPipelineExecutionSteps" in actions(s))
    assert text(reads["Resource"]).rstrip('"]}').endswith(":pipeline/ivadas-dev-training/execution/*")
    packages = next(s for s in statements if "sagemaker:UpdateModelPackage" in actions(s))
    assert all("ivadas-dev-training-" in text(r) for r in packages["Resource"])


def test_every_life_cycle_route_reaches_the_api(main_template_json):
    from infra.aws.constructs.lifecycle import ROUTES

    paths = {r["Properties"]["PathPart"] for r in resources(main_template_json, "AWS::ApiGateway::Resource").values()}
    for route in ROUTES:
        assert set(route.split("/")) <= paths, route
    methods = resources(main_template_json, "AWS::ApiGateway::Method").values()
    assert sum(m["Properties"]["HttpMethod"] == "DELETE" for m in methods) >= 1


def test_trials_start_only_their_own_processing_jobs_as_the_pipeline_role(main_template_json):
    _, function = predict_function(main_template_json)
    statements = role_statements(main_template_json, function)
    jobs = next(s for s in statements if "sagemaker:CreateProcessingJob" in actions(s) and "-trial-" in text(s["Resource"]))
    assert text(jobs["Resource"]).rstrip('"]}').endswith(":processing-job/ivadas-dev-training-trial-*")
    # the pipeline's role for trials (and imports); the monitoring job's own role for POST /monitoring/run
    passes = [s for s in statements if "iam:PassRole" in actions(s) and "TrainingPipelineRole" in text(s["Resource"])]
    assert len(passes) == 1 and passes[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert "*" not in text(passes[0]["Resource"])
    variables = function["Properties"]["Environment"]["Variables"]
    assert "TrainingPipelineRole" in text(variables["TRIAL_ROLE_ARN"]) and variables["TRIAL_IMAGE_URI"]


def test_the_api_reads_yaml_class_lists_from_a_layer_of_pure_python(main_template_json):
    from pathlib import Path

    from infra.aws.constructs.lifecycle import pyyaml_layer_folder

    _, function = predict_function(main_template_json)
    layers = resources(main_template_json, "AWS::Lambda::LayerVersion")
    yaml_layers = [name for name, layer in layers.items() if "PyYAML" in layer["Properties"].get("Description", "")]
    assert len(yaml_layers) == 1 and {"Ref": yaml_layers[0]} in function["Properties"]["Layers"]
    folder = Path(pyyaml_layer_folder())
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert "python/yaml/__init__.py" in files and not any(f.endswith((".so", ".pyc")) for f in files)
    # without its compiled extension PyYAML parses in pure Python, as it will on Lambda
    import subprocess
    import sys

    probe = f"import sys; sys.path.insert(0, {str(folder / 'python')!r}); import yaml; print(yaml.safe_load('names: [a, b]'))"
    result = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "{'names': ['a', 'b']}", result.stderr


def test_the_browser_reaches_the_routes_through_cloudfront_and_may_post_forms_to_the_data_bucket(main_template_json):
    from infra.aws.constructs.lifecycle import ROUTES

    [distribution] = resources(main_template_json, "AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    patterns = {b["PathPattern"] for b in config["CacheBehaviors"]}
    for route in ROUTES:
        first = "/" + route.split("/")[0]
        assert first in patterns or first + "*" in patterns, route
    [policy] = resources(main_template_json, "AWS::CloudFront::ResponseHeadersPolicy").values()
    csp = text(policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]["ContentSecurityPolicy"])
    assert "connect-src 'self'" in csp and "StorageData" in csp and ".s3.eu-west-1.amazonaws.com" in csp
    assert "form-action 'none'" in csp

"""The template's side of detector imports from the browser (infra/aws/constructs/lifecycle.py): the
API may start and read only import Processing jobs, pass only the pipeline's role and only to
SageMaker, and that role can do what the job does (read the upload, write the bundle, register)."""

from __future__ import annotations

from tests.infra.test_lifecycle_template import actions, predict_function, resources, role_statements, text

PIPELINE = "ivadas-dev-training"


def test_the_api_starts_only_import_jobs_as_the_pipeline_role(main_template_json):
    _, function = predict_function(main_template_json)
    statements = role_statements(main_template_json, function)
    jobs = [s for s in statements if "sagemaker:CreateProcessingJob" in actions(s)]
    # the API starts its jobs and reads them back (trials and imports follow theirs; a monitoring run's
    # start refused as ResourceInUse is read back to tell a lost answer from a taken name)
    assert jobs and all(sorted(actions(s)) == ["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob"]
                        for s in jobs)
    targets = [r for s in jobs for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    # only the trials', the imports' and the monitoring runs' own job names, never any processing job
    assert sorted(text(r).split(":processing-job/")[-1].rstrip('"]}') for r in targets) == [
        "ivadas-dev-monitor-*", f"{PIPELINE}-import-*", f"{PIPELINE}-trial-*"]
    passes = [s for s in statements if "iam:PassRole" in actions(s)]
    assert len(passes) == 2 and all(p["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
                                    for p in passes)
    passed = sorted(text(p["Resource"]) for p in passes)
    assert "DriftMonitoringJobRole" in passed[0] and "TrainingPipelineRole" in passed[1]
    assert not any("*" in role for role in passed)
    variables = function["Properties"]["Environment"]["Variables"]
    assert "TrainingPipelineRole" in text(variables["IMPORT_ROLE_ARN"])
    # the training image runs the job (as it runs trials); the version names the endpoint image, as the
    # pipeline's Register step does
    pipeline = next(iter(resources(main_template_json, "AWS::SageMaker::Pipeline").values()))
    substitutions = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"][1]
    assert variables["IMPORT_IMAGE_URI"] == variables["TRIAL_IMAGE_URI"] == substitutions["TrainingImageUri"]
    assert variables["ENDPOINT_IMAGE_URI"] == substitutions["EndpointImageUri"] != variables["IMPORT_IMAGE_URI"]


def test_the_api_reads_the_jobs_result_where_it_reads_reports(main_template_json):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambda" / "predict"))
    from imports import SageMakerImports

    launcher = SageMakerImports.__new__(SageMakerImports)
    launcher.pipeline = PIPELINE
    key = launcher.result_key({"id": "20261201T000000-abcdef12"})
    assert key.startswith(f"pipelines/{PIPELINE}/")
    _, function = predict_function(main_template_json)
    reads = [s for s in role_statements(main_template_json, function) if "s3:GetObject" in actions(s)
             and f"/pipelines/{PIPELINE}/*" in text(s["Resource"]) and "StorageArtifacts" in text(s["Resource"])]
    assert reads, "the API cannot read the import job's result.json"


def test_the_pipeline_role_can_do_what_the_import_job_does(main_template_json):
    roles = resources(main_template_json, "AWS::IAM::Role")
    role = next(name for name in roles if name.startswith("TrainingPipelineRole"))
    statements = [s for p in resources(main_template_json, "AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    registers = next(s for s in statements if "sagemaker:CreateModelPackage" in actions(s))
    assert "sagemaker:DescribeModelPackageGroup" in actions(registers)
    assert any(f"model-package-group/{PIPELINE}-*" in text(r) for r in registers["Resource"])
    assert any("s3:PutObject" in actions(s) and "StorageArtifacts" in text(s["Resource"]) for s in statements)
    assert any("s3:GetObject*" in actions(s) and "StorageData" in text(s["Resource"]) for s in statements)


def test_the_import_routes_are_behind_sign_in(main_template_json):
    gateway = resources(main_template_json, "AWS::ApiGateway::Resource")
    by_id = {name: r["Properties"] for name, r in gateway.items()}

    def path_of(name: str) -> str:
        parts = []
        while name in by_id:
            parts.append(by_id[name]["PathPart"])
            parent = by_id[name]["ParentId"]
            name = parent.get("Ref") if isinstance(parent, dict) and "Ref" in parent else None
        return "/".join(reversed(parts))

    methods = {(path_of(m["Properties"]["ResourceId"]["Ref"]), m["Properties"]["HttpMethod"]): m["Properties"]
               for m in resources(main_template_json, "AWS::ApiGateway::Method").values()
               if isinstance(m["Properties"].get("ResourceId"), dict) and "Ref" in m["Properties"]["ResourceId"]}
    for route in (("models/import/uploads", "POST"), ("models/import", "POST"), ("models/imports", "GET"),
                  ("models/imports/{import_id}", "GET")):
        assert route in methods, route
        assert methods[route]["AuthorizationType"] == "COGNITO_USER_POOLS", route

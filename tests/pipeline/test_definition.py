"""The SageMaker pipeline definition, built offline: structure, wiring, determinism, no AWS calls."""

import json

import botocore.endpoint
import pytest

from pipelines.definition import PipelineSettings, definition_json


@pytest.fixture(scope="module")
def aws_calls():
    """Every AWS request made while the fixture is active (none may be sent)."""
    calls = []
    original = botocore.endpoint.Endpoint.make_request

    def record(self, operation_model, request_dict):
        calls.append(f"{operation_model.service_model.service_name}:{operation_model.name}")
        raise AssertionError(f"AWS call while building the definition: {calls[-1]}")

    botocore.endpoint.Endpoint.make_request = record
    yield calls
    botocore.endpoint.Endpoint.make_request = original


@pytest.fixture(scope="module")
def definition(aws_calls):
    return json.loads(definition_json(PipelineSettings()))


def steps_by_name(definition):
    steps = {s["Name"]: s for s in definition["Steps"]}
    for condition in [s for s in definition["Steps"] if s["Type"] == "Condition"]:
        for branch in ("IfSteps", "ElseSteps"):
            steps.update({s["Name"]: s for s in condition["Arguments"][branch]})
    return steps


def test_steps_and_order(definition):
    assert [s["Name"] for s in definition["Steps"]] == ["Preprocess", "Train", "Evaluate", "QualityGate"]
    assert [s["Type"] for s in definition["Steps"]] == ["Processing", "Training", "Processing", "Condition"]
    gate = definition["Steps"][3]["Arguments"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["Register"] and gate["IfSteps"][0]["Type"] == "RegisterModel"
    assert [s["Name"] for s in gate["ElseSteps"]] == ["QualityGateFailed"] and gate["ElseSteps"][0]["Type"] == "Fail"


def test_parameters_and_defaults(definition):
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert set(params) == {"DataUri", "Classes", "ModelKind", "Backbone", "BackboneWeights", "CoresetRatio", "ImageSize",
                           "AurocGate", "ApprovalStatus", "ProcessingInstanceType", "TrainingInstanceType", "SourceRevision"}
    assert params["ApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    assert params["AurocGate"]["Type"] == "Float" and params["AurocGate"]["DefaultValue"] == 0.9
    assert params["ModelKind"]["DefaultValue"] == "patchcore"
    assert params["CoresetRatio"]["DefaultValue"] == "0.01"


def test_steps_run_the_ivadas_images_and_wire_outputs(definition):
    steps = steps_by_name(definition)
    settings = PipelineSettings()
    preprocess, train, evaluate = steps["Preprocess"]["Arguments"], steps["Train"]["Arguments"], steps["Evaluate"]["Arguments"]
    assert preprocess["AppSpecification"]["ImageUri"] == settings.image_uri
    assert preprocess["AppSpecification"]["ContainerEntrypoint"] == ["python", "-m", "pipelines.steps.preprocess"]
    assert train["AlgorithmSpecification"]["TrainingImage"] == settings.image_uri
    assert all(isinstance(v, (str, dict)) for v in train["HyperParameters"].values())  # strings or parameter refs
    manifest = next(c for c in train["InputDataConfig"] if c["ChannelName"] == "manifest")
    assert manifest["DataSource"]["S3DataSource"]["S3Uri"] == {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['manifest'].S3Output.S3Uri"}
    model_input = next(i for i in evaluate["ProcessingInputs"] if i["InputName"] == "model")
    assert model_input["S3Input"]["S3Uri"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert steps["Evaluate"]["PropertyFiles"] == [{"FilePath": "evaluation.json", "OutputName": "evaluation", "PropertyFileName": "Evaluation"}]
    assert all(steps[name]["CacheConfig"]["Enabled"] for name in ("Preprocess", "Train", "Evaluate"))


def test_condition_and_registration(definition):
    steps = steps_by_name(definition)
    condition = steps["QualityGate"]["Arguments"]["Conditions"][0]
    assert condition["Type"] == "GreaterThanOrEqualTo"
    assert condition["LeftValue"]["Std:JsonGet"]["Path"] == "mean.image_auroc"
    assert condition["RightValue"] == {"Get": "Parameters.AurocGate"}
    register = steps["Register"]["Arguments"]
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ApprovalStatus"}
    assert register["ModelPackageGroupName"] == {"Std:Join": {"On": "-", "Values": ["ivadas-training", {"Get": "Parameters.ModelKind"}]}}
    container = register["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == PipelineSettings().inference_image_uri
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri" in json.dumps(statistics["S3Uri"])
    assert set(register["CustomerMetadataProperties"]) == {"data_uri", "classes", "model_kind", "backbone", "source_revision"}
    fail = steps["QualityGateFailed"]["Arguments"]["ErrorMessage"]
    assert "mean image AUROC" in json.dumps(fail) and "Parameters.AurocGate" in json.dumps(fail)


def test_definition_is_byte_identical_and_makes_no_aws_call(aws_calls):
    first, second = definition_json(PipelineSettings()), definition_json(PipelineSettings())
    assert first == second
    assert aws_calls == []
    other = definition_json(PipelineSettings(image_uri="123.dkr.ecr.eu-west-1.amazonaws.com/x:1"))
    assert other != first and "123.dkr.ecr.eu-west-1.amazonaws.com/x:1" in other

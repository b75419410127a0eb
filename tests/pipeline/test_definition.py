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
    """Every step, those inside condition branches too."""
    steps, pending = {}, list(definition["Steps"])
    while pending:
        step = pending.pop()
        steps[step["Name"]] = step
        if step["Type"] == "Condition":
            pending += step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"]
    return steps


def test_steps_and_order(definition):
    assert [s["Name"] for s in definition["Steps"]] == ["Preprocess", "Train", "Evaluate", "QualityGate"]
    assert [s["Type"] for s in definition["Steps"]] == ["Processing", "Training", "Processing", "Condition"]
    gate = definition["Steps"][3]["Arguments"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["QualityGateThreshold"] and gate["IfSteps"][0]["Type"] == "Condition"
    assert [s["Name"] for s in gate["ElseSteps"]] == ["QualityGateUndefined"] and gate["ElseSteps"][0]["Type"] == "Fail"
    threshold = gate["IfSteps"][0]["Arguments"]
    assert [s["Name"] for s in threshold["IfSteps"]] == ["Register"] and threshold["IfSteps"][0]["Type"] == "RegisterModel"
    assert [s["Name"] for s in threshold["ElseSteps"]] == ["QualityGateFailed"] and threshold["ElseSteps"][0]["Type"] == "Fail"


def test_parameters_and_defaults(definition):
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert set(params) == {"DataUri", "DataSnapshot", "Classes", "ModelKind", "KindSettings", "AurocGate", "ApprovalStatus",
                           "ProcessingInstanceType", "TrainingInstanceType", "SourceRevision"}
    assert params["ApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    assert params["AurocGate"]["Type"] == "Float" and params["AurocGate"]["DefaultValue"] == 0.9
    assert params["ModelKind"]["DefaultValue"] == "patchcore"
    assert params["KindSettings"]["DefaultValue"] == "{}"  # every kind's own defaults, whatever the kind


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
    defined = steps["QualityGate"]["Arguments"]["Conditions"][0]
    assert defined["Type"] == "Equals" and defined["LeftValue"]["Std:JsonGet"]["Path"] == "quality_gate.defined"
    condition = steps["QualityGateThreshold"]["Arguments"]["Conditions"][0]
    assert condition["Type"] == "GreaterThanOrEqualTo"
    assert condition["LeftValue"]["Std:JsonGet"]["Path"] == "quality_gate.value"
    assert condition["RightValue"] == {"Get": "Parameters.AurocGate"}
    register = steps["Register"]["Arguments"]
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ApprovalStatus"}
    group = register["ModelPackageGroupName"]["Std:Join"]
    assert group["On"] == "-" and group["Values"][0] == "ivadas-training"
    assert group["Values"][1]["Std:JsonGet"]["Path"] == "registration.group_suffix"
    container = register["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == PipelineSettings().inference_image_uri
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri" in json.dumps(statistics["S3Uri"])
    assert set(register["CustomerMetadataProperties"]) == {"data_uri", "data_snapshot", "classes", "model_kind", "kind_settings",
                                                           "source_revision", "mlflow_run_id"}
    fail = steps["QualityGateFailed"]["Arguments"]["ErrorMessage"]
    assert "is below the gate" in json.dumps(fail) and "Parameters.AurocGate" in json.dumps(fail)


def test_definition_is_byte_identical_and_makes_no_aws_call(aws_calls):
    first, second = definition_json(PipelineSettings()), definition_json(PipelineSettings())
    assert first == second
    assert aws_calls == []
    other = definition_json(PipelineSettings(image_uri="123.dkr.ecr.eu-west-1.amazonaws.com/x:1"))
    assert other != first and "123.dkr.ecr.eu-west-1.amazonaws.com/x:1" in other


# ------------------------------------------------------------------------------ outputs and caching

EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}


def test_every_output_is_written_under_the_execution_id(definition):
    """No run overwrites what an earlier one registered (a version's metrics), two runs never race, and
    the outputs of a cached step stay the ones it produced."""
    steps = steps_by_name(definition)
    outputs = [o["S3Output"]["S3Uri"] for name in ("Preprocess", "Evaluate")
               for o in steps[name]["Arguments"]["ProcessingOutputConfig"]["Outputs"]]
    outputs.append(steps["Train"]["Arguments"]["OutputDataConfig"]["S3OutputPath"])
    for uri in outputs:
        assert "Std:Join" in uri and EXECUTION_ID in uri["Std:Join"]["Values"], uri
    statistics = steps["Register"]["Arguments"]["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"} in statistics["Std:Join"]["Values"]


def test_the_data_snapshot_is_part_of_every_cache_key(definition):
    """SageMaker keys a cached step on its arguments (environment, hyperparameters, input URIs), not on
    the files behind them: the snapshot's content hash among them makes changed data a cache miss."""
    steps = steps_by_name(definition)
    snapshot = {"Get": "Parameters.DataSnapshot"}
    for name in ("Preprocess", "Evaluate"):
        assert steps[name]["Arguments"]["Environment"]["IVADAS_DATA_SNAPSHOT"] == snapshot
        assert steps[name]["CacheConfig"]["Enabled"] is True
    assert steps["Train"]["Arguments"]["HyperParameters"]["data_snapshot"] == snapshot


def test_preprocess_reads_the_data_as_the_kind_needs(definition):
    arguments = steps_by_name(definition)["Preprocess"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--kind") + 1] == {"Get": "Parameters.ModelKind"}


def test_the_pipeline_experiment_is_explicit(definition):
    assert definition["PipelineExperimentConfig"] == {"ExperimentName": {"Get": "Execution.PipelineName"},
                                                      "TrialName": EXECUTION_ID}


# ------------------------------------------------------------------------------ the quality gate, evaluated

class ConditionError(Exception):
    """What SageMaker reports when a condition cannot be evaluated (the step errors, with no reason of ours)."""


def value_of(expression, evaluation: dict, parameters: dict):
    if not isinstance(expression, dict):
        return expression
    if "Get" in expression:
        return parameters[expression["Get"].removeprefix("Parameters.")]
    if "Std:JsonGet" in expression:
        found = evaluation
        for key in expression["Std:JsonGet"]["Path"].split("."):
            if not isinstance(found, dict) or key not in found:
                raise ConditionError(f"JsonGet: no {expression['Std:JsonGet']['Path']} in evaluation.json")
            found = found[key]
        return found
    if "Std:Join" in expression:
        return expression["Std:Join"]["On"].join(str(value_of(v, evaluation, parameters)) for v in expression["Std:Join"]["Values"])
    raise ValueError(expression)


def holds(condition: dict, evaluation: dict, parameters: dict) -> bool:
    left, right = (value_of(condition[k], evaluation, parameters) for k in ("LeftValue", "RightValue"))
    if condition["Type"] == "Equals":
        return left == right
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
        raise ConditionError(f"cannot compare {left!r} with {right!r}")
    return {"GreaterThanOrEqualTo": left >= right, "GreaterThan": left > right}[condition["Type"]]


def run_gate(definition: dict, evaluation: dict) -> tuple[str, str]:
    """(the step the gate ends in, its error message) for this evaluation.json, as SageMaker runs conditions."""
    parameters = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    step = next(s for s in definition["Steps"] if s["Name"] == "QualityGate")
    while step["Type"] == "Condition":
        arguments = step["Arguments"]
        branch = "IfSteps" if all(holds(c, evaluation, parameters) for c in arguments["Conditions"]) else "ElseSteps"
        [step] = arguments[branch]
    message = value_of(step["Arguments"]["ErrorMessage"], evaluation, parameters) if step["Type"] == "Fail" else ""
    return step["Name"], message


def evaluation_json(mean_auroc, kind="patchcore") -> dict:
    from pipelines.definition import gate_and_registration

    report = {"mean": {"image_auroc": mean_auroc}, "classes": {"tiles": {"image_auroc": mean_auroc}}}
    return {**report, **gate_and_registration(report, "image_auroc", kind)}


def test_a_model_above_the_gate_is_registered_and_one_below_fails_with_its_value(definition):
    assert run_gate(definition, evaluation_json(0.95)) == ("Register", "")
    assert run_gate(definition, evaluation_json(0.5)) == ("QualityGateFailed", "mean image_auroc 0.5 is below the gate 0.9")


def test_an_undefined_metric_fails_the_gate_with_a_reason_instead_of_an_error(definition):
    """A class without anomalous evaluation images has no AUROC (null): comparing null errors out in
    SageMaker without a word about the data, so the gate asks first whether the value exists."""
    step, message = run_gate(definition, evaluation_json(None))
    assert step == "QualityGateUndefined"
    assert "mean image_auroc is undefined" in message and "anomalous evaluation data" in message
    assert run_gate(definition, evaluation_json(float("nan")))[0] == "QualityGateUndefined"


def test_kinds_register_into_groups_sagemaker_accepts():
    from pipelines.definition import gate_and_registration, model_package_group

    registration = gate_and_registration({"mean": {"f1": 0.8}}, "f1", "isolation_forest")["registration"]
    assert registration == {"model_kind": "isolation_forest", "group_suffix": "isolation-forest"}
    assert model_package_group("ivadas-training", "isolation_forest") == "ivadas-training-isolation-forest"
    assert model_package_group("ivadas-training", "patchcore") == "ivadas-training-patchcore"


def test_the_evaluate_step_writes_what_the_gate_reads(tmp_path):
    from pipelines.steps.evaluate import add_gate_and_registration

    path = tmp_path / "evaluation.json"
    report = {"mean": {"image_auroc": None}, "classes": {"tiles": {"image_auroc": None}}}
    path.write_text(json.dumps(report))
    add_gate_and_registration(path, report, "image_auroc", "softpatch")
    written = json.loads(path.read_text())
    assert written["classes"] == report["classes"]
    assert written["quality_gate"]["defined"] is False and written["quality_gate"]["value"] is None
    assert written["registration"]["group_suffix"] == "softpatch"

"""The training pipeline with a sensor kind: the same steps, gate and registry as images."""

import json

from infra.cli import main
from pipelines.local_runner import read_runs
from pipelines.registry import LocalRegistry


def run(data, store, *extra):
    return main(["pipeline", "run", "--local", "--data", str(data), "--classes", "pump-1,pump-2", "--model", "pca",
                 "--gate", "0.6", "--store", str(store), *extra])


def test_a_sensor_model_is_registered_with_its_metrics_and_lineage(sensor_data, tmp_path):
    assert run(sensor_data, tmp_path) == 0
    [version] = LocalRegistry(tmp_path).list("ivadas-training-pca")
    assert version.status == "PendingManualApproval" and version.metadata["modality"] == "sensors"
    mean = version.metrics["mean"]
    assert mean["auroc"] >= 0.6 and 0 <= mean["far"] <= 1 and mean["event_recall"] is not None
    assert set(version.metrics["classes"]) == {"pump-1", "pump-2"}
    assert version.metadata["data_uri"] == str(sensor_data.resolve()) and version.metadata["execution_id"]
    from inference.bundle import manifest_of

    manifest = manifest_of(version.model_url)
    assert manifest["modality"] == "sensors" and manifest["lineage"]["execution_id"] == version.metadata["execution_id"]
    split = manifest["classes"]["pump-1"]["split"]["segments"][0]
    assert 0 < split["fit_end"] < split["train_end"] < split["rows"] == 1200
    [record] = read_runs(tmp_path)
    evaluation = json.loads(open(record["evaluation_uri"]).read())
    assert evaluation["split"]["name"] == "heldout" and evaluation["model"]["modality"] == "sensors"
    quality = json.loads((tmp_path / "pipelines/ivadas-training/cache/preprocess").glob("*/manifest/data_quality.json").__next__().read_text())
    assert quality["classes"]["pump-1"]["sensors"][0] == "motor_current" and quality["passed"] is True


def test_data_too_short_to_train_fails_in_preprocess_with_the_reason(tmp_path, capsys):
    from pipelines.sensors.synthetic import generate

    data = generate(tmp_path / "short", ("pump-1", "pump-2"), rows=60)
    assert run(data, tmp_path / "store") == 1
    assert "normal rows to fit on" in capsys.readouterr().err
    assert LocalRegistry(tmp_path / "store").list("ivadas-training-pca") == []


def test_the_sagemaker_pipeline_passes_any_kind_its_own_settings(sensor_data, tmp_path):
    import pytest

    from pipelines.steps.conventions import StepFailed
    from pipelines.steps.preprocess import main as preprocess
    from pipelines.steps.train import training_job

    hp = {"model": "lstm_ae", "classes": "pump-1", "kind_settings": '{"window": "16", "train_rows": "400"}', "epochs": "3",
          "data_snapshot": "abc", "source_revision": "r1"}
    job = training_job(hp, {"classes": {}})
    assert job.hyperparameters == {"window": "16", "train_rows": "400", "epochs": "3"}
    assert job.lineage == {"data_snapshot": "abc", "source_revision": "r1"}
    for bad in ("not json", "[1, 2]"):
        with pytest.raises(StepFailed, match="kind_settings"):
            training_job({**hp, "kind_settings": bad}, {"classes": {}})
    # the settings that decide the split judge the data as training will split it
    preprocess(["--input", str(sensor_data), "--output", str(tmp_path / "ok"), "--classes", "pump-1", "--kind", "pca",
                "--settings", '{"train_rows": "400", "window": "16"}'])
    quality = json.loads((tmp_path / "ok" / "data_quality.json").read_text())["classes"]["pump-1"]
    assert quality["evaluation_rows"] == 800 and quality["fit_rows"] == 320
    with pytest.raises(StepFailed, match="at least 50 are needed"):
        preprocess(["--input", str(sensor_data), "--output", str(tmp_path / "short"), "--classes", "pump-1", "--kind", "pca",
                    "--settings", '{"train_rows": "40"}'])

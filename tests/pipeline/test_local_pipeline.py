"""`ivadas pipeline run --local` and `ivadas models`: same steps, gate and registry semantics as SageMaker."""

import json
import shutil

import pytest

from infra.cli import main
from pipelines.local_runner import read_runs
from pipelines.registry import LocalRegistry

GROUP = "ivadas-training-patchcore"


def run_pipeline(data, store, *extra):
    return main(["pipeline", "run", "--local", "--data", str(data), "--classes", "tiles,fabric", "--model", "patchcore",
                 "--backbone", "resnet18", "--weights", "random", "--image-size", "160", "--store", str(store), *extra])


@pytest.fixture(scope="module")
def store(tmp_path_factory, demo_data):
    store = tmp_path_factory.mktemp("store")
    assert run_pipeline(demo_data, store) == 0
    return store


def test_run_registers_a_version_with_metrics_and_lineage(store, demo_data):
    [version] = LocalRegistry(store).list(GROUP)
    assert version.version == 1 and version.status == "PendingManualApproval"
    assert version.metrics["mean"]["image_auroc"] >= 0.9
    assert version.metadata["data_uri"] == str(demo_data.resolve())
    assert version.metadata["classes"] == "tiles,fabric" and version.metadata["model_kind"] == "patchcore"
    assert version.metadata["source_revision"] and version.metadata["execution_id"]
    assert version.model_url.endswith("model.tar.gz")
    from inference.bundle import manifest_of

    assert manifest_of(version.model_url)["lineage"]["execution_id"] == version.metadata["execution_id"]
    [record] = read_runs(store)
    assert record["status"] == "Succeeded" and record["registered_version"] == f"{GROUP}/1"
    assert [s["name"] for s in record["steps"]] == ["Preprocess", "Train", "Evaluate", "QualityGate", "Register"]
    for step in record["steps"][:3]:
        assert step["status"] == "Succeeded" and step["cached"] is False and step["seconds"] > 0
        assert (store / "pipelines/ivadas-training/executions" / record["execution_id"] / "logs" / f"{step['name']}.log").is_file()
    evaluation = json.loads(open(record["evaluation_uri"]).read())
    assert "binary_classification_metrics" in evaluation


def test_unchanged_rerun_skips_finished_steps_and_gate_fails_registers_nothing(store, demo_data):
    """The runner itself, with a gate no AUROC reaches (the command line refuses a gate above 1)."""
    from pipelines.local_runner import LocalPipeline, PipelineFailed, RunParameters, source_revision

    settings = {"backbone": "resnet18", "weights": "random", "image_size": "160"}  # what `run_pipeline` passes
    params = RunParameters(str(demo_data.resolve()), ("tiles", "fabric"), "patchcore", settings, gate=1.01,
                           source_revision=source_revision())
    with pytest.raises(PipelineFailed, match="is below the gate 1.01"):
        LocalPipeline(store, "ivadas-training").run(params)
    record = read_runs(store)[-1]
    assert record["status"] == "Failed" and "below the gate" in record["failure_reason"]
    assert [s.get("cached") for s in record["steps"][:3]] == [True, True, True]
    assert record["steps"][-1]["name"] == "QualityGateFailed"
    assert [v.version for v in LocalRegistry(store).list(GROUP)] == [1]


def test_approve_then_list_shows_the_served_version(store, capsys):
    assert main(["models", "approve", "patchcore/1", "--reason", "passed review", "--store", str(store)]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--store", str(store)]) == 0
    listing = capsys.readouterr().out
    line = next(line for line in listing.splitlines() if line.startswith(f"{GROUP}/1"))
    assert "Approved" in line and line.rstrip().endswith("*")
    assert main(["models", "show", f"{GROUP}/1", "--store", str(store)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [h["status"] for h in shown["history"]] == ["PendingManualApproval", "Approved"]
    assert shown["history"][-1]["reason"] == "passed review"


def test_registry_errors_leave_everything_unchanged(store, capsys):
    before = LocalRegistry(store).get(GROUP, 1)
    assert main(["models", "approve", "patchcore/42", "--reason", "x", "--store", str(store)]) == 2
    assert "no model version ivadas-training-patchcore/42" in capsys.readouterr().err
    assert main(["models", "approve", "nonsense", "--reason", "x", "--store", str(store)]) == 2
    assert "is not a model version" in capsys.readouterr().err
    assert LocalRegistry(store).get(GROUP, 1) == before


def test_rejecting_the_served_version_falls_back(tmp_path):
    registry = LocalRegistry(tmp_path)
    for i in range(3):
        registry.register(GROUP, f"/models/{i}.tar.gz", {}, {})
    registry.set_status(GROUP, 1, "Approved", "first")
    registry.set_status(GROUP, 3, "Approved", "third")
    assert registry.served(GROUP).version == 3
    registry.set_status(GROUP, 3, "Rejected", "drifted")
    assert registry.served(GROUP).version == 1
    with pytest.raises(ValueError, match="rejected"):
        registry.set_status(GROUP, 3, "Approved", "again")
    assert registry.get(GROUP, 2).status == "PendingManualApproval"


def test_failed_step_stops_the_run_with_its_reason_and_keeps_earlier_artifacts(tmp_path, demo_data, capsys):
    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    for extra in sorted((data / "fabric/train/good").glob("*.png"))[5:]:
        extra.unlink()
    assert run_pipeline(data, tmp_path / "store") == 1
    assert "at least 10 are needed" in capsys.readouterr().err
    record = read_runs(tmp_path / "store")[-1]
    assert [(s["name"], s["status"]) for s in record["steps"]] == [("Preprocess", "Failed")]
    quality = json.loads((tmp_path / "store/pipelines/ivadas-training/cache/preprocess").glob("*/manifest/data_quality.json").__next__().read_text())
    assert quality["passed"] is False and quality["classes"]["fabric"]["train_good"] == 5
    assert LocalRegistry(tmp_path / "store").list() == []


def test_bad_requests_are_one_line(tmp_path, demo_data, capsys):
    assert main(["pipeline", "run", "--local", "--data", str(tmp_path / "missing"), "--classes", "tiles", "--store", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["pipeline", "run", "--local", "--data", str(demo_data), "--classes", "bolts", "--store", str(tmp_path)]) == 2
    assert "class 'bolts' is not in" in capsys.readouterr().err
    for bad in (["--gate", "high"], ["--model", "resnet"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["pipeline", "run", "--local", "--data", str(demo_data), *bad])
        assert exit_info.value.code == 2

"""MLflow tracking of local pipeline runs: the run holds parameters, metrics per class, plots and the
bundle; the registry version names its run; an unreachable server never fails a training."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from infra.cli import main
from pipelines import tracking
from pipelines.local_runner import read_runs
from pipelines.registry import LocalRegistry
from tests.pipeline.mlflow_artifacts import artifact_paths

GROUP = "ivadas-training-patchcore"


def run_pipeline(data, store, *extra):
    return main(["pipeline", "run", "--local", "--data", str(data), "--classes", "tiles", "--model", "patchcore",
                 "--backbone", "resnet18", "--weights", "random", "--image-size", "160", "--store", str(store), *extra])


@pytest.fixture(scope="module")
def tracked_store(tmp_path_factory, demo_data):
    store = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as env:
        env.delenv(tracking.TRACKING_URI_ENV, raising=False)  # the embedded store under the artifact store
        assert run_pipeline(demo_data, store) == 0
    return store


@pytest.fixture(scope="module")
def client(tracked_store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking.local_tracking_uri(tracked_store))


def test_the_registered_version_names_the_run_that_holds_its_metrics_and_artifacts(tracked_store, client, demo_data):
    [version] = LocalRegistry(tracked_store).list(GROUP)
    run_id = version.metadata[tracking.RUN_ID_KEY]
    assert run_id != tracking.UNTRACKED
    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == GROUP  # one experiment per model kind, named as its package group
    assert run.info.status == "FINISHED"
    assert run.data.params["backbone"] == "resnet18" and run.data.params["model_kind"] == "patchcore"
    assert run.data.params["classes"] == "tiles"
    assert run.data.metrics["tiles.image_auroc"] == pytest.approx(version.metrics["classes"]["tiles"]["image_auroc"])
    assert run.data.metrics["mean.image_auroc"] == pytest.approx(version.metrics["mean"]["image_auroc"])
    assert "tiles.train.total_s" in run.data.metrics
    [record] = read_runs(tracked_store)
    assert run.data.tags["ivadas.execution_id"] == record["execution_id"] == version.metadata["execution_id"]
    assert run.data.tags["mlflow.source.git.commit"] == version.metadata["source_revision"]
    assert len(run.data.tags["ivadas.data_snapshot"]) == 20  # the data fingerprint the steps' cache keys use
    assert record["tracking"]["run_id"] == run_id
    artifacts = artifact_paths(client, run_id)
    assert "bundle/model.tar.gz" in artifacts
    assert {"evaluation/evaluation.json", "evaluation/roc_tiles.png", "evaluation/histogram_tiles.png"} <= set(artifacts)
    # the artifacts live under the store, not in a working directory's mlruns
    assert run.info.artifact_uri.startswith((tracked_store / "mlflow" / "artifacts").resolve().as_uri())


def test_the_bundle_lineage_and_the_evaluation_carry_the_run(tracked_store):
    from inference.bundle import manifest_of

    [version] = LocalRegistry(tracked_store).list(GROUP)
    assert manifest_of(version.model_url)["lineage"][tracking.RUN_ID_KEY] == version.metadata[tracking.RUN_ID_KEY]
    [record] = read_runs(tracked_store)
    evaluation = json.loads(open(record["evaluation_uri"]).read())
    assert evaluation["tracking"]["run_id"] == version.metadata[tracking.RUN_ID_KEY]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_tracking_server_does_not_fail_the_training(tmp_path, demo_data, monkeypatch, capsys):
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    assert run_pipeline(demo_data, tmp_path) == 0
    [version] = LocalRegistry(tmp_path).list(GROUP)
    assert version.metadata[tracking.RUN_ID_KEY] == tracking.UNTRACKED
    [record] = read_runs(tmp_path)
    log = open(record["steps"][1]["log"]).read()
    assert "training goes on without tracking" in log and "is not usable" in log


def test_ivadas_mlflow_serves_the_ui_over_the_local_store(tracked_store):
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "infra.cli", "mlflow", "--store", str(tracked_store), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name={GROUP}"
        for _ in range(120):
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    found = json.loads(response.read())
                break
            except OSError:
                assert process.poll() is None, process.stdout.read().decode()
                time.sleep(0.5)
        else:
            pytest.fail("the MLflow UI did not answer")
        assert found["experiment"]["name"] == GROUP
    finally:
        import os
        import signal

        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_the_sagemaker_steps_track_to_the_server_and_register_the_run():
    from pipelines.definition import PipelineSettings, definition_json

    arn = "arn:aws:sagemaker:eu-west-1:111111111111:mlflow-tracking-server/ivadas-dev"
    steps = {s["Name"]: s for s in json.loads(definition_json(PipelineSettings(mlflow_tracking_uri=arn)))["Steps"]}
    for name in ("Train", "Evaluate"):
        environment = steps[name]["Arguments"]["Environment"]
        assert environment["MLFLOW_TRACKING_URI"] == arn and environment["IVADAS_EXPERIMENT_PREFIX"] == "ivadas-training"
    register = json.dumps(steps["QualityGate"])
    assert '"mlflow_run_id": {"Std:JsonGet": {"Path": "tracking.run_id"' in register
    untracked = {s["Name"]: s for s in json.loads(definition_json(PipelineSettings()))["Steps"]}
    assert "MLFLOW_TRACKING_URI" not in json.dumps(untracked)


def test_ivadas_mlflow_on_a_port_in_use_is_one_clear_error(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["mlflow", "--store", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"error: port {port} on 127.0.0.1 is in use" in err and "--port" in err

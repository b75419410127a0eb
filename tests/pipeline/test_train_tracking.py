"""`ivadas train` (a bundle to a file or folder, not registered) is an MLflow run like a pipeline
training: the kind's experiment in the embedded store under the local artifact store, the same
parameters, the training timings and the bundle; an unreachable server never fails the training."""

import contextlib
import io
import re
import socket

import pytest

from infra.cli import main
from pipelines import tracking
from tests.pipeline.mlflow_artifacts import artifact_paths

GROUP = "ivadas-training-patchcore"


def train(data, output, *extra):
    return main(["train", "--data", str(data), "--classes", "tiles", "--model", "patchcore", "--backbone", "resnet18",
                 "--weights", "random", "--image-size", "64", "--coreset-ratio", "0.05", "--output", str(output),
                 "--quiet", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_data):
    home = tmp_path_factory.mktemp("home")
    bundle = home / "bundles" / "m.tar.gz"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("IVADAS_HOME", str(home))
        env.delenv(tracking.TRACKING_URI_ENV, raising=False)  # the embedded store under $IVADAS_HOME/store
        printed = io.StringIO()  # capsys is per test; the module's one training is read through a buffer
        with contextlib.redirect_stdout(printed):
            assert train(demo_data, bundle) == 0
    return home, bundle, printed.getvalue()


@pytest.fixture(scope="module")
def client(trained):
    from mlflow.tracking import MlflowClient

    home, _, _ = trained
    return MlflowClient(tracking.local_tracking_uri(home / "store"))


def test_ivadas_train_is_a_run_in_the_kinds_experiment_with_its_parameters_timings_and_bundle(trained, client, demo_data):
    home, bundle, printed = trained
    experiment = client.get_experiment_by_name(GROUP)
    assert experiment is not None  # the same experiment per kind as pipeline trainings
    [run] = client.search_runs([experiment.experiment_id])
    assert re.search(rf"^MLflow run {run.info.run_id} in experiment '{GROUP}'", printed, re.M), printed
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (params["backbone"], params["weights"], params["image_size"]) == ("resnet18", "random", "64")
    assert (params["model_kind"], params["classes"]) == ("patchcore", "tiles")
    assert params["data_uri"] == str(demo_data.resolve())
    assert len(params["data_snapshot"]) == 20 and params["data_snapshot"] == run.data.tags["ivadas.data_snapshot"]
    assert params["source_revision"] and params["source_revision"] == run.data.tags["mlflow.source.git.commit"]
    assert "layers" in params  # a setting left to the kind's default is still named
    assert run.data.tags["mlflow.source.name"] == "ivadas train"
    assert run.data.metrics["tiles.train.total_s"] > 0
    assert "bundle/m.tar.gz" in artifact_paths(client, run.info.run_id)
    assert run.info.artifact_uri.startswith((home / "store" / "mlflow" / "artifacts").resolve().as_uri())


def test_the_bundle_names_its_run(trained, client):
    from inference.bundle import manifest_of

    _, bundle, _ = trained
    [run] = client.search_runs([client.get_experiment_by_name(GROUP).experiment_id])
    assert manifest_of(bundle)["lineage"][tracking.RUN_ID_KEY] == run.info.run_id


def test_a_class_missing_from_the_data_is_one_error_line_and_no_run(trained, client, demo_data, monkeypatch, capsys):
    home, _, _ = trained
    monkeypatch.setenv("IVADAS_HOME", str(home))
    monkeypatch.delenv(tracking.TRACKING_URI_ENV, raising=False)
    assert main(["train", "--data", str(demo_data), "--classes", "bolts", "--weights", "random",
                 "--output", str(home / "typo.tar.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: class 'bolts' is not in") and err.count("\n") == 1, err
    assert len(client.search_runs([client.get_experiment_by_name(GROUP).experiment_id])) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_tracking_server_does_not_fail_ivadas_train(tmp_path, demo_data, monkeypatch, capsys):
    from inference.bundle import manifest_of

    monkeypatch.setenv("IVADAS_HOME", str(tmp_path))
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    assert train(demo_data, tmp_path / "m.tar.gz") == 0
    printed = capsys.readouterr()
    assert "is not usable" in printed.err and "training goes on without tracking" in printed.err
    assert "MLflow run" not in printed.out
    assert tracking.RUN_ID_KEY not in manifest_of(tmp_path / "m.tar.gz")["lineage"]
    assert not (tmp_path / "store" / "mlflow").exists()  # nothing went to the local store instead

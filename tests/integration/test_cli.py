"""The `ivadas` command as a user runs it: demo → train → evaluate → predict, and its errors."""

import json
import shutil
import subprocess
import sys

import pytest

from infra.cli import main
from tests.conftest import SENSOR_ASSETS


def run(*argv) -> int:
    return main([str(a) for a in argv])


@pytest.mark.slow
def test_demo_train_evaluate_predict_from_scratch(tmp_path, capsys):
    """The issue's acceptance path on the default demo data (256 px, three classes)."""
    data, bundle, report = tmp_path / "demo", tmp_path / "model.tar.gz", tmp_path / "report"
    assert run("demo-data", "--output", data) == 0
    assert run("train", "--data", data, "--backbone", "resnet18", "--weights", "random", "--output", bundle, "--quiet") == 0
    assert run("evaluate", "--data", data, "--bundle", bundle, "--output", report, "--quiet") == 0
    evaluation = json.loads((report / "evaluation.json").read_text())
    assert evaluation["mean"]["image_auroc"] >= 0.95, evaluation["mean"]
    capsys.readouterr()
    assert run("predict", data / "tiles/test/hole/000.png", "--class", "tiles", "--bundle", bundle,
               "--heatmap", tmp_path / "heat.png") == 0
    assert capsys.readouterr().out.startswith("ANOMALY")
    assert (tmp_path / "heat.png").stat().st_size > 1000
    assert run("predict", data / "tiles/test/good/000.png", "--class", "tiles", "--bundle", bundle, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["is_anomaly"] is False and "heatmap_png_base64" in result


def expect_error(capsys, *argv, match: str):
    assert run(*argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err and "Traceback" not in err


def test_user_errors_are_one_line(capsys, tmp_path, demo_data, patchcore_bundle):
    bundle = patchcore_bundle[0]
    expect_error(capsys, "train", "--data", tmp_path / "nowhere", "--weights", "random", match="does not exist")
    expect_error(capsys, "train", "--data", demo_data, "--classes", "bolts", "--weights", "random", match="class 'bolts' is not in")
    expect_error(capsys, "predict", tmp_path / "missing.png", "--class", "tiles", "--bundle", bundle, match="missing.png")
    expect_error(capsys, "predict", demo_data / "tiles/test/good/000.png", "--class", "bolts", "--bundle", bundle, match="unknown class 'bolts'")
    expect_error(capsys, "predict", demo_data / "tiles/test/good/000.png", "--class", "tiles", "--bundle", tmp_path / "none.tar.gz", match="no model bundle")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    expect_error(capsys, "predict", text, "--class", "tiles", "--bundle", bundle, match="not an image")
    expect_error(capsys, "evaluate", "--data", tmp_path / "nowhere", "--bundle", bundle, match="does not exist")
    train_only = tmp_path / "train-only" / "tiles" / "train" / "good"
    train_only.mkdir(parents=True)
    for picture in sorted((demo_data / "tiles/train/good").iterdir())[:3]:
        shutil.copy(picture, train_only)
    expect_error(capsys, "evaluate", "--data", tmp_path / "train-only", "--bundle", bundle, "--classes", "tiles",
                 match="class 'tiles' has no test images to evaluate")


def test_files_of_the_wrong_kind_are_refused_before_any_work(capsys, monkeypatch, tmp_path, demo_data,
                                                             patchcore_bundle, sensor_bundle, sensor_data):
    """A folder for an image, an image for a sensor model and a window for an image model, a bad weights
    file, an output that cannot be written (checked before training, not after it)."""
    image, bundle = demo_data / "tiles/test/good/000.png", patchcore_bundle[0]
    window = tmp_path / "window.csv"
    window.write_text("".join((sensor_data / f"{SENSOR_ASSETS[0]}.csv").read_text().splitlines(keepends=True)[:80]))
    expect_error(capsys, "predict", demo_data, "--class", "tiles", "--bundle", bundle, match="is a folder")
    expect_error(capsys, "predict", image, "--class", SENSOR_ASSETS[0], "--bundle", sensor_bundle[0],
                 match="is a pca model of sensors: give it a window")
    expect_error(capsys, "predict", window, "--class", "tiles", "--bundle", bundle, match="of image: give it an image file")
    expect_error(capsys, "predict", image, "--class", "tiles", "--bundle", bundle, "--model", "softpatch",
                 match="--model softpatch, but")
    expect_error(capsys, "predict", window, "--class", SENSOR_ASSETS[0], "--bundle", sensor_bundle[0], "--heatmap",
                 tmp_path / "h.png", match="has no heatmap")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a checkpoint")
    train = ("train", "--data", demo_data, "--classes", "tiles", "--backbone", "resnet18", "--quiet")
    expect_error(capsys, *train, "--weights", a_file, "--output", tmp_path / "w.tar.gz", match="is not a PyTorch checkpoint")
    expect_error(capsys, *train, "--weights", "random", "--layers", "layer9", "--output", tmp_path / "l.tar.gz",
                 match="has no feature layer(s) ['layer9']")
    expect_error(capsys, *train, "--weights", "random", "--std", "0.2,0.2,0.2", "--output", tmp_path / "s.tar.gz",
                 match="custom ONNX backbone only")
    import pipelines.kinds

    trained = []
    monkeypatch.setattr(pipelines.kinds, "train", lambda job: trained.append(job))
    for output, says in ((a_file / "m.tar.gz", "is a file, not a folder"), (tmp_path, "is a folder")):
        expect_error(capsys, *train, "--weights", "random", "--output", output, match=says)
    assert not trained  # refused before training, not after it
    assert not list(tmp_path.glob("*.tar.gz"))
    expect_error(capsys, "demo-sensors", "--output", tmp_path / "s", "--assets", "../outside", match="not a plain name")
    assert not (tmp_path / "outside.csv").exists()


@pytest.mark.parametrize("argv, says", [
    (("demo-data", "--contamination", "2"), "not in [0, 1]"),
    (("demo-sensors", "--rows", "0"), "less than 2"),
    (("demo-sensors", "--interval", "0"), "not a positive number"),
    (("up", "--port", "99999"), "not a TCP port"),
    (("pipeline", "run", "--local", "--data", "x", "--gate", "5"), "not in [0, 1]"),
    (("train", "--data", "x", "--backbone", "b.onnx", "--std", "0,0,0"), "must be positive"),
    (("train", "--data", "x", "--backbone", "b.onnx", "--mean", "nan,0,0"), "finite"),
    (("predict", "x.png", "--class", "tiles", "--heatmap", "heat"), "not a .png file name"),
])
def test_values_out_of_range_are_refused_with_usage(capsys, argv, says):
    with pytest.raises(SystemExit) as exit_info:
        run(*argv)
    assert exit_info.value.code == 2 and says in capsys.readouterr().err


def test_aws_commands_without_a_configured_region_say_so(capsys, monkeypatch):
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    expect_error(capsys, "pipeline", "status", "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/p/execution/x",
                 match="AWS: You must specify a region")


def test_argument_errors_exit_2_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run("train", "--data", "x", "--coreset-ratio", "2")
    assert exit_info.value.code == 2
    assert "not in (0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run("train", "--data", "x", "--model", "resnet")


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "infra.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo-data" in result.stdout and "bench" in result.stdout

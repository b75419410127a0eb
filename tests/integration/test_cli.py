"""The `ivadas` command as a user runs it: demo → train → evaluate → predict, and its errors."""

import json
import subprocess
import sys

import pytest

from infra.cli import main


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

"""Progress bars only on a terminal; a log gets one line per step, never one per image."""

import io
import re
import sys

import pytest

from infra.cli import main

BAR = re.compile(r"\r|\d+%\|")  # what tqdm writes while a bar moves


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _train_and_evaluate(demo_data, tmp_path, *extra):
    bundle = tmp_path / "m.tar.gz"
    assert main(["train", "--data", str(demo_data), "--classes", "tiles", "--backbone", "resnet18", "--weights", "random",
                 "--image-size", "64", "--coreset-ratio", "0.05", "--output", str(bundle), *extra]) == 0
    assert main(["evaluate", "--data", str(demo_data), "--classes", "tiles", "--bundle", str(bundle),
                 "--output", str(tmp_path / "report")]) == 0


def test_a_log_gets_one_line_per_step(demo_data, tmp_path, capsys):
    _train_and_evaluate(demo_data, tmp_path, "--model", "softpatch")
    log = capsys.readouterr().err
    assert not BAR.search(log), log
    steps = [match[1] for match in re.finditer(r"^(.+?): \d+ \w+ in [\d.]+ s", log, re.M)]
    assert steps == ["tiles: embed", "tiles: noise", "tiles: coreset", "tiles: calibrate", "train softpatch",
                     "evaluate tiles"], log
    assert re.search(r"^tiles: embed: 27 images in [\d.]+ s \(27 views, 1728 patches\)$", log, re.M), log
    assert re.search(r"^evaluate tiles: 16 images in [\d.]+ s$", log, re.M), log


def test_a_terminal_gets_bars_and_the_same_lines(demo_data, tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _train_and_evaluate(demo_data, tmp_path)
    shown = terminal.getvalue()
    assert BAR.search(shown)
    assert re.search(r"^tiles: coreset: \d+ entries in", shown.replace("\r", "\n"), re.M)


def test_quiet_prints_no_progress(demo_data, tmp_path, capsys):
    bundle = tmp_path / "m.tar.gz"
    assert main(["train", "--data", str(demo_data), "--classes", "tiles", "--backbone", "resnet18", "--weights", "random",
                 "--image-size", "64", "--output", str(bundle), "--quiet"]) == 0
    assert main(["evaluate", "--data", str(demo_data), "--classes", "tiles", "--bundle", str(bundle),
                 "--output", str(tmp_path / "report"), "--quiet"]) == 0
    log = capsys.readouterr().err
    assert not BAR.search(log) and not re.search(r" in [\d.]+ s", log), log


def test_sensor_training_writes_no_bars_to_a_log(sensor_data, tmp_path, capsys):
    from pipelines.kinds import TrainingJob, train

    train(TrainingJob("lstm_ae", sensor_data, ["pump-1"], {"epochs": "2"}, tmp_path / "s.tar.gz"))
    log = capsys.readouterr().err
    assert not BAR.search(log), log
    assert re.search(r"^train lstm_ae: 1 asset in [\d.]+ s$", log, re.M), log


@pytest.mark.parametrize("unit, count, expected", [("image", 1, "1 image"), ("image", 3, "3 images"),
                                                   ("entry", 2, "2 entries"), ("patch", 2, "2 patches")])
def test_summary_nouns(unit, count, expected, capsys):
    from pipelines.progress import Step

    with Step("step", count, unit) as step:
        step.update(count)
    assert capsys.readouterr().err.startswith(f"step: {expected} in ")

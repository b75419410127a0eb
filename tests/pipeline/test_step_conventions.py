import json

import pytest

from pipelines.steps import conventions
from pipelines.steps.conventions import StepFailed
from inference.errors import UnknownModel
from pipelines.kinds import TrainingJob, train
from pipelines.kinds.patchcore.training import SettingError, backbone_source, model_config


def test_sagemaker_paths_and_environment_overrides(monkeypatch, tmp_path):
    for key in ("SM_CHANNEL_DATA", "SM_MODEL_DIR", "SM_HPS", "SM_INPUT_CONFIG_DIR"):
        monkeypatch.delenv(key, raising=False)
    assert str(conventions.channel("data")) == "/opt/ml/input/data/data"
    assert str(conventions.model_dir()) == "/opt/ml/model"
    monkeypatch.setenv("SM_CHANNEL_DATA", str(tmp_path))
    assert conventions.channel("data") == tmp_path
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "hyperparameters.json").write_text(json.dumps({"model": "softpatch", "image_size": 128}))
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", str(config_dir))
    assert conventions.hyperparameters() == {"model": "softpatch", "image_size": "128"}  # always strings
    monkeypatch.setenv("SM_HPS", json.dumps({"model": "patchcore"}))
    assert conventions.hyperparameters() == {"model": "patchcore"}


def test_string_hyperparameters_become_a_model_config(tmp_path):
    config = model_config("softpatch", {"coreset_ratio": "0.05", "image_size": "224", "noise_method": "gaussian"})
    assert (config.kind, config.coreset_ratio, config.image_size, config.noise_method) == ("softpatch", 0.05, 224, "gaussian")
    with pytest.raises(SettingError, match="coreset_ratio='lots' is not a number"):
        model_config("patchcore", {"coreset_ratio": "lots"})
    with pytest.raises(UnknownModel, match="unknown model kind 'magic'"):
        train(TrainingJob("magic", tmp_path, ["tiles"]))
    with pytest.raises(SettingError, match=r"patchcore has no setting\(s\) \['window'\]"):
        train(TrainingJob("patchcore", tmp_path, ["tiles"], {"window": "64"}))


@pytest.mark.parametrize("key", ["soft_weights", "int8"])
def test_a_yes_no_hyperparameter_that_is_neither_is_refused_not_read_as_false(key):
    """`int8=yes` once trained an FP32 bundle without a word; both true/false settings now say what is wrong."""
    read = (lambda hp: model_config("softpatch", hp).soft_weights) if key == "soft_weights" else (lambda hp: backbone_source(hp)[1])
    assert read({key: "True"}) is True and read({key: "false"}) is False and read({}) is False
    with pytest.raises(SettingError, match=f"hyperparameter {key}='yes' is not true or false"):
        read({key: "yes"})

"""The settings the API checks a training request against (lambda/predict/kind_settings.py, declared
there because the Lambda's asset cannot import the training code) are the settings, and types, the
training reads: pipelines/kinds/ and the modules it names. A setting added to a kind's training
without being added to the catalogue (or the other way round) fails here, not in front of a user."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))

import kind_settings  # noqa: E402
from kind_settings import NUMBER, NUMBERS, TEXT, WHOLE, YES_NO  # noqa: E402


def test_every_image_kind_the_pipelines_train_is_in_the_catalogue_and_nothing_else():
    from inference.kinds import kinds_of
    from pipelines.kinds import trainable_kinds

    trainable_images = [kind for kind in trainable_kinds() if kind in kinds_of("image")]
    assert sorted(kind_settings.KIND_SETTINGS) == sorted(trainable_images)


@pytest.mark.parametrize("kind", ["patchcore", "softpatch"])
def test_patchcore_s_settings_and_their_types_are_the_training_s(kind):
    from pipelines.kinds import TRAINING_MODULES
    from pipelines.kinds.patchcore import training

    assert TRAINING_MODULES[kind] == training.__name__
    declared = kind_settings.KIND_SETTINGS[kind]
    assert set(declared) == set(training.FLOAT_SETTINGS + training.INT_SETTINGS + training.TEXT_SETTINGS
                                + training.YES_NO_SETTINGS + training.BACKBONE_SETTINGS)
    for names, wanted in ((training.FLOAT_SETTINGS, NUMBER), (training.INT_SETTINGS, WHOLE),
                          (training.TEXT_SETTINGS, TEXT), (training.YES_NO_SETTINGS, YES_NO)):
        assert {name: declared[name] for name in names} == dict.fromkeys(names, wanted)
    # the backbone's: read by backbone_source (mean and std as numbers, int8 as yes/no, the rest as text)
    assert {name: declared[name] for name in training.BACKBONE_SETTINGS} == {
        "backbone": TEXT, "weights": TEXT, "layers": TEXT, "mean": NUMBERS, "std": NUMBERS, "int8": YES_NO}


def test_the_autoencoder_s_settings_and_their_types_are_the_training_s():
    from pipelines.kinds import TRAINING_MODULES
    from pipelines.kinds.autoencoder import training

    assert TRAINING_MODULES["autoencoder"] == training.__name__
    declared = kind_settings.KIND_SETTINGS["autoencoder"]
    assert declared == {**dict.fromkeys(training.INT_SETTINGS, WHOLE), **dict.fromkeys(training.FLOAT_SETTINGS, NUMBER)}


def test_every_value_the_catalogue_lets_through_the_training_reads():
    """What checked_settings passes on, the training's own parsers accept (and what it refuses, they refuse)."""
    from pipelines.kinds.autoencoder.training import config_from
    from pipelines.kinds.patchcore.training import SettingError, backbone_source, model_config

    passed = kind_settings.checked_settings("patchcore", {"image_size": 64.0, "coreset_ratio": 1, "soft_weights": True,
                                                          "int8": "False", "seed": "7", "preprocessing": "letterbox"})
    assert passed == {"image_size": "64", "coreset_ratio": "1", "soft_weights": "true", "int8": "false", "seed": "7",
                      "preprocessing": "letterbox"}
    config = model_config("patchcore", {k: v for k, v in passed.items() if k != "int8"})
    assert (config.image_size, config.coreset_ratio, config.soft_weights, config.seed) == (64, 1.0, True, 7)
    assert backbone_source({"int8": passed["int8"]})[1] is False
    assert config_from(kind_settings.checked_settings("autoencoder", {"epochs": 2, "learning_rate": "0.01"})).epochs == 2
    for value in ("abc", "64.5", 64.5):
        with pytest.raises(SettingError):
            model_config("patchcore", {"image_size": str(value)})
        with pytest.raises(kind_settings.ApiError):
            kind_settings.checked_settings("patchcore", {"image_size": value})


@pytest.mark.parametrize(("kind", "settings", "code", "message"), [
    ("patchcore", {"epochs": "3"}, "unknown_setting", "the patchcore model has no setting(s) epochs; its settings are "),
    ("autoencoder", {"backbone": "resnet18"}, "unknown_setting", "the autoencoder model has no setting(s) backbone"),
    ("patchcore", {"image_size": "abc"}, "bad_setting", "setting image_size='abc' is not a whole number"),
    ("patchcore", {"image_size": 64.5}, "bad_setting", "setting image_size=64.5 is not a whole number"),
    ("patchcore", {"image_size": True}, "bad_setting", "setting image_size=true is not a whole number"),
    ("patchcore", {"coreset_ratio": None}, "bad_setting", "setting coreset_ratio=null is not a number"),
    ("patchcore", {"coreset_ratio": "a tenth"}, "bad_setting", "setting coreset_ratio='a tenth' is not a number"),
    ("patchcore", {"coreset_ratio": float("nan")}, "bad_setting", "setting coreset_ratio=nan is not a number"),
    ("patchcore", {"tile_overlap": "Infinity"}, "bad_setting", "setting tile_overlap='Infinity' is not a number"),
    ("patchcore", {"noise_fraction": int("9" * 400)}, "bad_setting", "setting noise_fraction=999999999999999999999..."),
    ("patchcore", {"mean": "0.4,nan,0.4"}, "bad_setting", "setting mean='0.4,nan,0.4' is not comma-separated numbers"),
    ("softpatch", {"soft_weights": "yes"}, "bad_setting", "setting soft_weights='yes' is not true or false"),
    ("softpatch", {"int8": 1}, "bad_setting", "setting int8=1 is not true or false"),
    ("patchcore", {"backbone": False}, "bad_setting", "setting backbone=false is not text"),
    ("patchcore", {"mean": "0.5,x,0.5"}, "bad_setting", "setting mean='0.5,x,0.5' is not comma-separated numbers"),
    ("autoencoder", {"epochs": [3]}, "bad_setting", "setting epochs=[3] is not a whole number"),
    ("detector", {}, "bad_request", "the detector model cannot be trained here; the models that can: patchcore, "),
])
def test_a_setting_the_kind_does_not_know_or_cannot_read_is_refused(kind, settings, code, message):
    with pytest.raises(kind_settings.ApiError) as error:
        kind_settings.checked_settings(kind, settings)
    assert (error.value.status, error.value.code) == (400, code)
    assert error.value.message.startswith(message), error.value.message


def test_the_unknown_setting_s_message_lists_every_setting_the_kind_knows():
    with pytest.raises(kind_settings.ApiError) as error:
        kind_settings.checked_settings("autoencoder", {"epochs": 2, "backbone": "resnet18"})
    assert error.value.message == ("the autoencoder model has no setting(s) backbone; its settings are base_channels, "
                                   "batch_size, epochs, image_size, latent_channels, learning_rate, level, map_sigma, "
                                   "normal_quantile, seed")

"""The settings of each model kind `POST /trainings` can train, and the check of a request's settings
against them: an unknown setting or a value of the wrong type is a 400 at once, not a training that
fails at its Train step.

Declared here because the Lambda's asset is this folder alone: it cannot import the training code
(`pipelines/kinds/`) that reads the settings. tests/unit/test_kind_settings.py checks that every
image kind the pipelines can train is here with exactly the settings, and types, its training takes.
Ranges and combinations (e.g. `mean`/`std` only with a custom ONNX backbone) stay the training's to judge.
"""

from __future__ import annotations

import math

from api_core import ApiError, shown

#: The types of setting values, in the words of the messages ("... is not a whole number").
WHOLE = "a whole number"
NUMBER = "a number"
YES_NO = "true or false"
TEXT = "text"
NUMBERS = "comma-separated numbers"

#: patchcore and softpatch: pipelines/kinds/patchcore/training.py (FLOAT_SETTINGS, INT_SETTINGS,
#: TEXT_SETTINGS, YES_NO_SETTINGS, BACKBONE_SETTINGS)
_PATCHCORE = {
    "coreset_ratio": NUMBER, "noise_fraction": NUMBER, "noise_images": NUMBER, "normal_quantile": NUMBER,
    "tile_overlap": NUMBER,
    "image_size": WHOLE, "seed": WHOLE, "tile_size": WHOLE, "memory_limit_mb": WHOLE, "noise_support": WHOLE,
    "noise_method": TEXT, "noise_image_rule": TEXT, "preprocessing": TEXT,
    "soft_weights": YES_NO,
    "backbone": TEXT, "weights": TEXT, "layers": TEXT, "mean": NUMBERS, "std": NUMBERS, "int8": YES_NO,
}

#: kind → setting → type of its value
KIND_SETTINGS: dict[str, dict[str, str]] = {
    "patchcore": _PATCHCORE,
    "softpatch": _PATCHCORE,
    # pipelines/kinds/autoencoder/training.py (INT_SETTINGS, FLOAT_SETTINGS)
    "autoencoder": {
        "level": WHOLE, "image_size": WHOLE, "base_channels": WHOLE, "latent_channels": WHOLE, "epochs": WHOLE,
        "batch_size": WHOLE, "seed": WHOLE,
        "learning_rate": NUMBER, "map_sigma": NUMBER, "normal_quantile": NUMBER,
    },
}


def trainable(kind: str) -> None:
    """A 400 for a kind this API serves but cannot train (e.g. `detector`, which is imported)."""
    if kind not in KIND_SETTINGS:
        raise ApiError(400, "bad_request", f"the {kind} model cannot be trained here; "
                                           f"the models that can: {', '.join(KIND_SETTINGS)}")


def checked_settings(kind: str, settings: dict) -> dict[str, str]:
    """The settings as the training reads them (strings, as SageMaker passes hyperparameters), or a
    400 naming the first setting that is unknown to `kind` or whose value is of the wrong type."""
    trainable(kind)
    known = KIND_SETTINGS[kind]
    unknown = [name for name in settings if name not in known]
    if unknown:
        raise ApiError(400, "unknown_setting", f"the {kind} model has no setting(s) {', '.join(unknown)}; "
                                               f"its settings are {', '.join(sorted(known))}")
    return {name: _text(name, value, known[name]) for name, value in settings.items()}


def _text(name: str, value, wanted: str) -> str:
    """`value` as the string the training parses, if the training can parse it as `wanted`."""
    if value is None or isinstance(value, (list, dict)) or (isinstance(value, bool) and wanted != YES_NO):
        raise _wrong(name, value, wanted)
    if wanted == YES_NO:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower()
        raise _wrong(name, value, wanted)
    if wanted == WHOLE and isinstance(value, float) and value.is_integer():
        value = int(value)  # 64.0 from a client that writes every number as a float
    text = str(value)
    try:
        if wanted == WHOLE:
            int(text)
        elif wanted in (NUMBER, NUMBERS):
            numbers = [float(part) for part in text.split(",")] if wanted == NUMBERS else [float(text)]
            if not all(math.isfinite(number) for number in numbers):  # NaN, Infinity, 1e999, 400 digits
                raise ValueError(text)
    except ValueError:
        raise _wrong(name, value, wanted) from None
    return text


def _wrong(name: str, value, wanted: str) -> ApiError:
    return ApiError(400, "bad_setting", f"setting {name}={shown(value)} is not {wanted}")

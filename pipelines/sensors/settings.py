"""Settings of the sensor kinds as dataclasses, parsed from SageMaker's string hyperparameters.

Every setting has its default and the reason for it in one place: `SeriesSettings` for what all
sensor kinds share (below), and each kind's own dataclass in its folder under `pipelines/kinds/`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


class SettingError(ValueError):
    """A hyperparameter that cannot be used as given."""


@dataclass(frozen=True)
class SeriesSettings:
    """How every sensor kind splits, calibrates and explains a series."""

    #: Share of each recording, from its start, that is the training period; the rest is evaluated
    #: (rows are never shuffled: a model is judged on a later period than it learnt from). Half: as
    #: much normal behaviour to learn from as to be judged on.
    train_fraction: float = 0.5
    #: Rows of each recording in the training period instead of `train_fraction` (SKAB's protocol: 400).
    train_rows: int = 0
    #: Share at the end of the training period held out from fitting to calibrate the threshold: a
    #: fifth (SKAB's 400 rows: 320 fitted, 80 set the threshold), enough held-out rows for a 99 %
    #: quantile while the model still learns from most of the period.
    calibration_fraction: float = 0.2
    #: Normal-only calibration: this quantile of the held-out normal scores, times `threshold_margin`,
    #: is the threshold (the same rule as for images). A margin above 1 lowers SKAB's false alarms
    #: for the autoencoders but costs the row-wise kinds recall there and on the synthetic data, and
    #: a multiplied threshold is meaningless for scores that do not start at 0 (an Isolation Forest's
    #: sit near 0.5): 1, measured in pipelines/sensors/BENCHMARKS.md (threshold margin table).
    normal_quantile: float = 0.99
    threshold_margin: float = 1.0
    #: Causal moving average of the raw score over this many rows (1: none). The kinds steady their
    #: scores inside their graphs where it helps (row-wise kinds average their last rows; windowed
    #: kinds read tens of rows per score), so none is added on top by default.
    smoothing: int = 1
    #: Excursions separated by at most this many rows below the threshold are one event: a score
    #: that dips under the threshold for a few rows is still the same fault to a maintenance engineer.
    merge_gap: int = 5
    #: Fewest normal rows the model may be fitted on: fewer cannot show the noise of the sensors.
    min_fit_rows: int = 50
    #: Seed of every random choice in training (forests, network weights, batches).
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.train_fraction < 1.0:
            raise SettingError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if not 0.0 < self.calibration_fraction < 1.0:
            raise SettingError(f"calibration_fraction must be in (0, 1), got {self.calibration_fraction}")
        if not 0.5 <= self.normal_quantile <= 1.0:
            raise SettingError(f"normal_quantile must be in [0.5, 1], got {self.normal_quantile}")
        if self.threshold_margin <= 0:
            raise SettingError(f"threshold_margin must be positive, got {self.threshold_margin}")
        for name in ("train_rows", "merge_gap"):
            if getattr(self, name) < 0:
                raise SettingError(f"{name} must not be negative")
        if self.smoothing < 1 or self.min_fit_rows < 1:
            raise SettingError("smoothing and min_fit_rows must be at least 1")


def parse(cls, hyperparameters: dict[str, str]):
    """An instance of the settings dataclass `cls` from the string values of the keys it knows."""
    values = {}
    for item in dataclasses.fields(cls):
        if item.name not in hyperparameters:
            continue
        text = str(hyperparameters[item.name]).strip()
        try:
            values[item.name] = _convert(text, item.type)
        except ValueError:
            raise SettingError(f"setting {item.name}={text!r} is not {_WANTED.get(_type_name(item.type), 'valid')}") from None
    return cls(**values)


#: What a value of each setting type must be, in the words of the messages.
_WANTED = {"bool": "true or false", "int": "a whole number", "float": "a number"}


def _type_name(kind) -> str:
    return kind if isinstance(kind, str) else kind.__name__


def _convert(text: str, kind):
    kind = _type_name(kind)
    if kind == "bool":
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(text)
        return text.lower() in ("true", "1", "yes")
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text


def names(*classes) -> set[str]:
    return {item.name for cls in classes for item in dataclasses.fields(cls)}


def as_dict(*instances) -> dict:
    merged = {}
    for instance in instances:
        merged.update(dataclasses.asdict(instance))
    return merged

"""Deterministic splits of one class: fit, calibration (held out), validation and evaluation.

Thresholds are calibrated on images that never count in reported metrics: held-out normal
training images and, when the test set has labelled anomalies, a validation share of it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pipelines.vision.datasets import ClassData, Sample

CALIBRATION_FRACTION = 0.1  # of train/good, held out from the memory bank
VALIDATION_FRACTION = 0.2  # of each test defect folder (and test/good), held out from metrics
MIN_FIT_IMAGES = 2


@dataclass
class ClassSplit:
    fit: list[Sample]
    calibration: list[Sample]  # normal, from train/good
    validation: list[Sample]  # labelled, from test
    evaluation: list[Sample]  # labelled, from test: the only images metrics are reported on

    def to_dict(self) -> dict:
        return {name: [s.key for s in getattr(self, name)] for name in ("fit", "calibration", "validation", "evaluation")}


def _rank(sample: Sample, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{sample.key}".encode()).hexdigest()


def _take(samples: list[Sample], fraction: float, seed: int, minimum: int) -> tuple[list[Sample], list[Sample]]:
    """(held out, rest), chosen by a seeded hash so adding a file does not reshuffle the others."""
    if not samples:
        return [], []
    count = min(len(samples) - 1, max(minimum, round(len(samples) * fraction))) if len(samples) > 1 else 0
    ordered = sorted(samples, key=lambda s: _rank(s, seed))
    held = set(id(s) for s in ordered[:count])
    return [s for s in samples if id(s) in held], [s for s in samples if id(s) not in held]


def split_class(data: ClassData, seed: int = 0, calibration_fraction: float = CALIBRATION_FRACTION,
                validation_fraction: float = VALIDATION_FRACTION) -> ClassSplit:
    calibration, fit = _take(data.train, calibration_fraction, seed, minimum=1)
    if len(fit) < MIN_FIT_IMAGES:
        fit, calibration = data.train, []
    validation, evaluation = [], []
    for defect in sorted({s.defect for s in data.test}):
        group = [s for s in data.test if s.defect == defect]
        held, rest = _take(group, validation_fraction, seed, minimum=1)
        validation += held
        evaluation += rest
    return ClassSplit(fit, calibration, validation, evaluation)


def split_from_keys(data: ClassData, keys: dict) -> ClassSplit:
    """The split a preprocess step recorded, resolved against the files present now."""
    by_key = {s.key: s for s in data.train + data.test}
    missing = [k for part in ("fit", "calibration", "validation", "evaluation") for k in keys.get(part, []) if k not in by_key]
    if missing:
        from inference.errors import DatasetError

        raise DatasetError(f"class {data.name!r}: {len(missing)} file(s) of the split manifest are gone, e.g. {missing[0]}")
    return ClassSplit(*[[by_key[k] for k in keys.get(part, [])] for part in ("fit", "calibration", "validation", "evaluation")])

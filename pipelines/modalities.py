"""What differs between images and sensors in the pipeline, behind one interface.

Each modality module provides:
- `GATE_METRIC`: the mean metric the quality gate compares with the gate value;
- `list_classes(root)`: the classes (images) or assets (sensors) of a dataset;
- `preprocess(root, classes, seed, **limits)` → (split manifest, data-quality report, failures);
- `evaluate(bundle, data_root, output_dir, classes, split, quiet)` → the evaluation report,
  computed through the serving code path;
- optionally `train_kind(job, module)`: trains a kind whose training module gives only its maths
  (the sensor kinds: `Settings`, `fit`, `uses_time_features`), so that such a module needs no glue.
"""

from __future__ import annotations

import importlib

from inference.kinds import MODALITIES, kind_info

MODULES = {"image": "pipelines.vision.modality", "sensors": "pipelines.sensors.modality"}


def modality(name: str):
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; one of {MODALITIES}")
    return importlib.import_module(MODULES[name])


def of_kind(kind: str):
    return modality(kind_info(kind).modality)

"""How each model kind trains, registered in one place (the serving side is `inference.kinds`).

A kind's training module has `train(job: TrainingJob) -> TrainingReport`: it reads the job's
data through its modality (`pipelines.modalities`), trains every class or asset, calibrates its
thresholds on held-out data and writes the bundle. A module without `train` gives only its maths
and its modality's `train_kind` does the rest (every sensor kind: see `pipelines.sensors.training`). Hyperparameters arrive as strings, as
SageMaker passes them; each kind parses and validates its own and names what is wrong.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from inference.kinds import KINDS, kind_info

TRAINING_MODULES: dict[str, str] = {}


def register(kind: str, module: str) -> None:
    kind_info(kind)  # a trainable kind must be servable
    TRAINING_MODULES[kind] = module


@dataclass
class TrainingJob:
    kind: str
    data_root: Path
    classes: list[str]
    #: every value a string, as SageMaker passes hyperparameters
    hyperparameters: dict[str, str] = field(default_factory=dict)
    output: Path = Path("model.tar.gz")
    lineage: dict = field(default_factory=dict)
    #: class → split of file keys, as the preprocess step recorded it (None: computed the same way)
    split_manifest: dict | None = None
    quiet: bool = False


@dataclass
class TrainingReport:
    manifest: dict
    timings: dict = field(default_factory=dict)
    problems: dict = field(default_factory=dict)


def train(job: TrainingJob) -> TrainingReport:
    if job.kind not in TRAINING_MODULES:
        kind_info(job.kind)  # unknown kinds get the registry's message
        raise ValueError(f"model kind {job.kind!r} cannot be trained here; trainable kinds: {list(TRAINING_MODULES)}")
    module = importlib.import_module(TRAINING_MODULES[job.kind])
    if hasattr(module, "train"):
        return module.train(job)
    from pipelines.modalities import of_kind

    return of_kind(job.kind).train_kind(job, module)


def trainable_kinds() -> tuple[str, ...]:
    return tuple(name for name in KINDS if name in TRAINING_MODULES)


register("patchcore", "pipelines.kinds.patchcore.training")
register("softpatch", "pipelines.kinds.patchcore.training")
register("autoencoder", "pipelines.kinds.autoencoder.training")
for _sensor_kind in ("isolation_forest", "residual_forest", "pca", "lstm_ae", "conv_ae", "patchtst"):
    register(_sensor_kind, f"pipelines.kinds.{_sensor_kind}.training")

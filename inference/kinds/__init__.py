"""The model kinds an endpoint can serve, registered in one place.

A kind declares its modality (`image` or `sensors`), the outputs it can add to a verdict, and the
module whose `load(root, manifest, threads)` turns an unpacked bundle into a served model (see
`inference.model.ServedModel`). Everything else — the bundle, the endpoint server, the pipeline,
the registry, the API, the CLI and the UI — looks kinds up here instead of naming them. Adding a
kind is its folder under `inference/kinds/` (and `pipelines/kinds/` for training) plus one
`register(...)` line below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from inference.errors import UnknownModel

MODALITIES = ("image", "sensors")


@dataclass(frozen=True)
class KindInfo:
    name: str
    modality: str
    #: module with `load(root: Path, manifest: dict, threads: int | None) -> ServedModel`
    scoring_module: str
    #: optional parts of an answer the kind can give, requested through `outputs`
    outputs: tuple[str, ...]
    summary: str

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"kind {self.name!r}: modality must be one of {MODALITIES}")

    def load(self, root, manifest: dict, threads: int | None = None):
        return importlib.import_module(self.scoring_module).load(root, manifest, threads)


KINDS: dict[str, KindInfo] = {}


def register(info: KindInfo) -> None:
    if info.name in KINDS:
        raise ValueError(f"model kind {info.name!r} is registered twice")
    KINDS[info.name] = info


def kind_info(name: str) -> KindInfo:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownModel(f"unknown model kind {name!r}; choose one of {list(KINDS)}") from None


def kinds_of(modality: str) -> tuple[str, ...]:
    return tuple(name for name, info in KINDS.items() if info.modality == modality)


IMAGE_OUTPUTS = ("heatmap", "regions")

register(KindInfo("patchcore", "image", "inference.kinds.patchcore.bundle", IMAGE_OUTPUTS,
                  "PatchCore: nearest-neighbour distance of patch features to a memory bank of normal patches"))
register(KindInfo("softpatch", "image", "inference.kinds.patchcore.bundle", IMAGE_OUTPUTS,
                  "SoftPatch: PatchCore whose memory bank is cleaned of defects that slipped into the training images"))
register(KindInfo("autoencoder", "image", "inference.kinds.autoencoder.bundle", IMAGE_OUTPUTS,
                  "Convolutional autoencoder: the error of an image's reconstruction, pixel by pixel"))
register(KindInfo("detector", "image", "inference.kinds.detector.bundle", ("detections",),
                  "Your own YOLO-format ONNX detector: labelled boxes; anomalous when a box is of an anomalous class"))

SENSOR_OUTPUTS = ("contributions", "events", "scores")
SENSOR_SCORING = "inference.sensors.bundle"  # every sensor kind serves its ONNX graph the same way

register(KindInfo("isolation_forest", "sensors", SENSOR_SCORING, SENSOR_OUTPUTS,
                  "Isolation Forest: how few random splits isolate a reading from normal ones"))
register(KindInfo("residual_forest", "sensors", SENSOR_SCORING, SENSOR_OUTPUTS,
                  "Residual forest: each sensor predicted from the others and the time; anomalous beyond k σ of normal residuals"))
register(KindInfo("pca", "sensors", SENSOR_SCORING, SENSOR_OUTPUTS,
                  "PCA T² + Q: distance inside and away from the subspace normal readings span"))
register(KindInfo("lstm_ae", "sensors", SENSOR_SCORING, SENSOR_OUTPUTS,
                  "LSTM autoencoder: reconstruction error of a window of readings"))
register(KindInfo("conv_ae", "sensors", SENSOR_SCORING, SENSOR_OUTPUTS,
                  "Convolutional autoencoder: reconstruction error of a window of readings"))
register(KindInfo("patchtst", "sensors", SENSOR_SCORING, SENSOR_OUTPUTS,
                  "PatchTST: error of the next reading forecast by a patch transformer"))

#: The kind a request that names none gets, per modality of what it sends (a deployment may choose
#: others). PCA for sensors: see pipelines/sensors/BENCHMARKS.md.
DEFAULT_KINDS = {"image": "patchcore", "sensors": "pca"}

#: Every registered kind, in registration order.
MODEL_KINDS = tuple(KINDS)

__all__ = ["DEFAULT_KINDS", "KINDS", "KindInfo", "MODALITIES", "MODEL_KINDS", "kind_info", "kinds_of", "register"]

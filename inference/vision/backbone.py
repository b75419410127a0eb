"""Runs an ONNX feature extractor: the one place features come from, in training and serving.

Contract of the graph: input `[N, 3, H, W]` float32, RGB normalised with the backbone's mean and
std, and one output per feature layer named like the layer (e.g. `layer2`, `layer3`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.errors import BundleError
from inference.runtime import open_session

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """Identity of a feature extractor, as recorded in a bundle manifest."""

    name: str
    layers: tuple[str, ...]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    weights: str = "unknown"  # "imagenet", "random", a file's sha256 ...
    precision: str = "fp32"  # or "int8"
    quantization: str | None = None  # the INT8 recipe (pipelines/vision/quantize.py), e.g. "qdq-u8s8-w7-percentile"

    def to_dict(self) -> dict:
        data = {
            "name": self.name,
            "layers": list(self.layers),
            "mean": list(self.mean),
            "std": list(self.std),
            "weights": self.weights,
            "precision": self.precision,
        }
        if self.quantization:
            data["quantization"] = self.quantization
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "BackboneSpec":
        return cls(
            name=data["name"],
            layers=tuple(data["layers"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            weights=data.get("weights", "unknown"),
            precision=data.get("precision", "fp32"),
            quantization=data.get("quantization"),
        )


class OnnxBackbone:
    """An ONNX Runtime session that returns the named feature layers for a normalised batch."""

    def __init__(self, onnx_path: str | os.PathLike, spec: BackboneSpec, threads: int | None = None):
        self.path = Path(onnx_path)
        self.spec = spec
        self.session = open_session(self.path, threads, "backbone")
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        missing = [layer for layer in spec.layers if layer not in outputs]
        if missing:
            raise BundleError(f"the backbone {self.path.name} has no output(s) {missing}; it has {outputs}")

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        """Feature maps `[N, C_l, H_l, W_l]` for every configured layer, in layer order."""
        return self.session.run(list(self.spec.layers), {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})

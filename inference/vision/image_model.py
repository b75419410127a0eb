"""The serving code path: bytes or image in, verdict, scores, heatmap and regions out.

Evaluation scores test images through this same class, so reported metrics are those of serving.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
from PIL import Image

from inference.bundle import LoadedBundle, load_bundle
from inference.errors import BadRequest, UnknownClass
from inference.vision.imageio import decode_image
from inference.kinds.patchcore.model import RawResult
from inference.vision.render import heatmap_rgba, png_bytes, regions

OUTPUTS = ("heatmap", "regions")
HEATMAP_MAX_SIDE = 512  # heatmap PNGs are an overlay, not a copy of a 20-megapixel photo


class Detector:
    def __init__(self, bundle: LoadedBundle, version: str | None = None):
        self.bundle = bundle
        self.version = version or bundle.version  # the registry's label when the deployer knows it

    @classmethod
    def load(cls, location: str | Path, threads: int | None = None) -> "Detector":
        return cls(load_bundle(location, threads=threads))

    @property
    def kind(self) -> str:
        return self.bundle.kind

    @property
    def classes(self) -> list[str]:
        return self.bundle.classes

    def model_for(self, class_name: str):
        try:
            return self.bundle.models[class_name]
        except KeyError:
            raise UnknownClass(f"unknown class {class_name!r}; this {self.kind} model serves {self.classes}") from None

    def score_images(self, images: list[Image.Image], class_name: str, with_maps: bool = True) -> list[RawResult]:
        """Raw scores (and maps) for several images of one class (batched through the backbone)."""
        model = self.model_for(class_name)
        embeddings, _ = self.bundle.extractor.embed(images)
        return [model.score(per_image, with_maps) for per_image in embeddings]

    def predict_bytes(self, data: bytes, class_name: str, threshold: float | None = None, outputs=OUTPUTS) -> dict:
        started = time.perf_counter()
        self.model_for(class_name)  # an unknown class is reported before the image is decoded
        image = decode_image(data)
        decoded = time.perf_counter()
        result = self.predict(image, class_name, threshold, outputs)
        result["timing_ms"]["decode"] = round((decoded - started) * 1000, 2)
        result["timing_ms"]["total"] = round((time.perf_counter() - started) * 1000, 2)
        return result

    def predict(self, image: Image.Image, class_name: str, threshold: float | None = None, outputs=OUTPUTS) -> dict:
        """Verdict for one decoded image; `threshold` overrides the class's 0.5 on the normalised score."""
        return self.predict_with_map(image, class_name, threshold, outputs)[0]

    def predict_with_map(self, image: Image.Image, class_name: str, threshold: float | None = None,
                         outputs=OUTPUTS) -> tuple[dict, np.ndarray | None]:
        """`predict`, plus the normalised anomaly map (model resolution; None without outputs) for local rendering."""
        threshold = check_threshold(threshold)
        unknown = set(outputs) - set(OUTPUTS)
        if unknown:
            raise BadRequest(f"unknown outputs {sorted(unknown)}; choose from {list(OUTPUTS)}")
        started = time.perf_counter()
        model = self.model_for(class_name)
        raw = self.score_images([image], class_name, with_maps=bool(outputs))[0]
        scored = time.perf_counter()
        calibration = model.calibration
        anomaly_score = float(calibration.normalise(raw.raw_score))
        result = {
            "class_name": class_name,
            "model": {"kind": self.kind, "version": self.version},
            "anomaly_score": round(anomaly_score, 6),
            "raw_score": round(float(raw.raw_score), 6),
            "threshold": threshold,
            "raw_threshold": round(calibration.threshold, 6),
            "is_anomaly": bool(anomaly_score >= threshold),
        }
        normalised_map = calibration.normalise(raw.raw_map) if raw.raw_map is not None else None
        if "heatmap" in outputs:
            result["heatmap_png_base64"] = encode_heatmap(normalised_map, image.size)
        if "regions" in outputs:
            result["regions"] = regions(normalised_map, threshold, image.size)
        result["timing_ms"] = {
            "model": round((scored - started) * 1000, 2),
            "outputs": round((time.perf_counter() - scored) * 1000, 2),
        }
        return result, normalised_map


def check_threshold(threshold) -> float:
    if threshold is None:
        return 0.5
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (0.0 <= float(threshold) <= 1.0):
        raise BadRequest(f"threshold must be a number in [0, 1], got {threshold!r}")
    return float(threshold)


def encode_heatmap(normalised_map: np.ndarray, image_size: tuple[int, int]) -> str:
    width, height = image_size
    scale = min(1.0, HEATMAP_MAX_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return base64.b64encode(png_bytes(heatmap_rgba(normalised_map, size))).decode("ascii")

"""The serving code path of every image kind: bytes or image in, verdict, scores, heatmap and regions out.

A kind provides one scorer per class (raw image score and, when asked, a raw anomaly map at the
image's size); this class decodes, calibrates, renders and times. Evaluation scores test images
through it, so reported metrics are those of serving.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from inference.input_statistics import image_statistics
from inference.calibration import Calibration
from inference.errors import BadRequest
from inference.model import ServedModel, WrongModality, check_threshold, parse_threshold
from inference.limits import MAX_IMAGE_BYTES
from inference.vision.imageio import decode_image
from inference.vision.render import heatmap_rgba, png_bytes, regions

HEATMAP_MAX_SIDE = 512  # heatmap PNGs are an overlay, not a copy of a 20-megapixel photo
IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/tiff", "application/x-image", "application/octet-stream")


@dataclass
class RawResult:
    raw_score: float
    raw_map: np.ndarray | None  # model-resolution map in raw score units (None when not asked for)


class ImageScorer(Protocol):
    calibration: Calibration

    def score(self, images: list[Image.Image], with_maps: bool = True) -> list[RawResult]:
        """Raw scores (and maps) of several images of this scorer's class."""


class ImageModel(ServedModel):
    modality = "image"

    def __init__(self, manifest: dict, scorers: dict[str, ImageScorer], root=None, version: str | None = None):
        super().__init__(manifest, root, version)
        self.scorers = scorers

    def model_for(self, class_name: str) -> ImageScorer:
        return self.scorers[self.check_class(class_name)]

    def white_level(self, class_name: str) -> int | None:
        """Raw value that becomes white when a high-bit-depth image of this class has no sBIT chunk:
        learnt from the class's training images (None: they were 8-bit or stated their depth)."""
        intensity = self.manifest["classes"].get(class_name, {}).get("intensity") or {}
        return intensity.get("white_level")

    def decode(self, data: bytes, class_name: str, max_bytes: int = MAX_IMAGE_BYTES) -> Image.Image:
        """Decode request bytes exactly as this class's training images were decoded."""
        return decode_image(data, max_bytes, self.white_level(class_name))

    def score_images(self, images: list[Image.Image], class_name: str, with_maps: bool = True) -> list[RawResult]:
        """Raw scores (and maps) for several images of one class, batched through the kind's scorer."""
        return self.model_for(class_name).score(images, with_maps)

    # ------------------------------------------------------------------------------ requests

    def predict_instance(self, class_name: str, instance: dict) -> dict:
        return self.predict_bytes(decode_base64(instance.get("image_base64")), class_name,
                                  parse_threshold(instance.get("threshold")), instance.get("outputs"))

    def predict_body(self, body: bytes, content_type: str, attributes: dict) -> dict:
        if content_type not in IMAGE_TYPES:
            raise WrongModality(f"the {self.kind} model takes images or application/json, not {content_type}")
        class_name = self.class_from_attributes(attributes)
        return self.predict_bytes(body, class_name, parse_threshold(attributes.get("threshold")), attributes.get("outputs"))

    def predict_bytes(self, data: bytes, class_name: str, threshold: float | None = None, outputs=None) -> dict:
        started = time.perf_counter()
        self.model_for(class_name)  # an unknown class is reported before the image is decoded
        image = self.decode(data, class_name)
        decoded = time.perf_counter()
        result = self.predict_image(image, class_name, threshold, outputs)
        result["timing_ms"]["decode"] = round((decoded - started) * 1000, 2)
        result["timing_ms"]["total"] = round((time.perf_counter() - started) * 1000, 2)
        return result

    def predict_image(self, image: Image.Image, class_name: str, threshold: float | None = None, outputs=None) -> dict:
        """Verdict for one decoded image; `threshold` overrides the class's 0.5 on the normalised score."""
        return self.predict_image_with_map(image, class_name, threshold, outputs)[0]

    def predict_image_with_map(self, image: Image.Image, class_name: str, threshold: float | None = None,
                               outputs=None) -> tuple[dict, np.ndarray | None]:
        """`predict_image`, plus the normalised anomaly map (None without outputs) for local rendering."""
        threshold = check_threshold(threshold)
        outputs = self.check_outputs(outputs)
        started = time.perf_counter()
        scorer = self.model_for(class_name)
        raw = scorer.score([image], bool(outputs))[0]
        scored = time.perf_counter()
        calibration = scorer.calibration
        anomaly_score = float(calibration.normalise(raw.raw_score))
        result = {
            "class_name": class_name,
            "model": {"kind": self.kind, "version": self.version},
            "anomaly_score": round(anomaly_score, 6),
            "raw_score": round(float(raw.raw_score), 6),
            "threshold": threshold,
            "raw_threshold": round(calibration.threshold, 6),
            "is_anomaly": bool(anomaly_score >= threshold),
            # for drift monitoring: kept in the inspection log, not returned by the API
            "input_statistics": image_statistics(image),
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

    def describe_model(self) -> dict:
        manifest = self.manifest
        preprocessing = manifest.get("preprocessing", {})
        described = {"image_size": preprocessing.get("image_size"), "preprocessing": preprocessing.get("mode", "resize")}
        if "backbone" in manifest:
            described["backbone"] = {k: manifest["backbone"].get(k) for k in ("name", "weights", "precision")}
        return described


def decode_base64(text) -> bytes:
    if not isinstance(text, str) or not text:
        raise BadRequest("image_base64 is required and must be a non-empty base64 string")
    if text.startswith("data:") and "," in text:  # tolerate data URLs from browsers
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("image_base64 is not valid base64") from None


def encode_heatmap(normalised_map: np.ndarray, image_size: tuple[int, int]) -> str:
    width, height = image_size
    scale = min(1.0, HEATMAP_MAX_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return base64.b64encode(png_bytes(heatmap_rgba(normalised_map, size))).decode("ascii")

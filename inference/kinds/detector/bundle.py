"""The bring-your-own detector as a served model: what an import writes and what serving loads.

Files::

    detector.onnx    the user's Ultralytics-format ONNX detector, unchanged

The manifest's `config` holds the class names, the classes that make an image anomalous, the input
size, the IoU threshold of NMS and the most detections an answer holds. Every product class
(`class_name` of a request) is served by the same graph. A request's `threshold` is the confidence
cut: the answer's `detections` are the boxes at or above it, and `is_anomaly` says whether one of
them is of an anomalous class. `anomaly_score` (= `raw_score`) is the best confidence of an
anomalous class anywhere in the image, so `is_anomaly` is `anomaly_score >= threshold` as for
every kind, and a client can re-judge at another threshold without asking again.
"""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image

from inference.bundle import bundle_file
from inference.calibration import Calibration
from inference.errors import BundleError
from inference.model import check_threshold
from inference.vision.image_model import ImageModel, RawResult

from .yolo import IOU_THRESHOLD, LAYOUT, LETTERBOX_FILL, MAX_DETECTIONS, DetectorError, YoloDetector

KIND = "detector"
GRAPH = "detector.onnx"
#: The confidence cut of a request that sends no threshold is the contract's 0.5 (threshold = confidence).
CONFIDENCE_CALIBRATION = Calibration(threshold=0.5, low=0.0, high=1.0, method="confidence", normal_count=0, anomalous_count=0)


def contents(graph: str | Path, product_classes: list[str], names: list[str], anomalous: list[str],
             input_size: tuple[int, int], iou_threshold: float = IOU_THRESHOLD, max_detections: int = MAX_DETECTIONS,
             metrics: dict | None = None, lineage: dict | None = None) -> tuple[dict, dict]:
    """(manifest fields, files) of a detector bundle, for `inference.bundle.write_bundle`."""
    entry = {"threshold": CONFIDENCE_CALIBRATION.threshold, "calibration": CONFIDENCE_CALIBRATION.to_dict()}
    manifest = {
        "kind": KIND,
        "modality": "image",
        "classes": {name: dict(entry) for name in product_classes},
        "config": {
            "names": list(names),
            "anomalous_classes": list(anomalous),
            "input_size": [int(input_size[0]), int(input_size[1])],
            "iou_threshold": float(iou_threshold),
            "max_detections": int(max_detections),
            "layout": LAYOUT,
        },
        "preprocessing": {
            "image_size": int(max(input_size)),
            "letterbox": {"height": int(input_size[0]), "width": int(input_size[1]), "fill": LETTERBOX_FILL,
                          "resize": "bilinear (OpenCV INTER_LINEAR)"},
            "colour": "rgb",
            "scale": "1/255",
        },
        "metrics": metrics or {},
        "lineage": lineage or {},
    }
    return manifest, {GRAPH: Path(graph)}


class DetectionScorer:
    """The detector as an image scorer: the image's anomaly score (for image-level evaluation)."""

    calibration = CONFIDENCE_CALIBRATION

    def __init__(self, detector: YoloDetector):
        self.detector = detector

    def score(self, images: list[Image.Image], with_maps: bool = True) -> list[RawResult]:
        return [RawResult(self.detector.decode(image, 1.0).anomaly_score, None) for image in images]


class DetectorModel(ImageModel):
    """Image requests answered with labelled boxes; the verdict is any box of an anomalous class."""

    def __init__(self, manifest: dict, detector: YoloDetector, root=None):
        scorer = DetectionScorer(detector)
        super().__init__(manifest, {name: scorer for name in manifest["classes"]}, root)
        self.detector = detector

    def predict_image_with_map(self, image: Image.Image, class_name: str, threshold: float | None = None,
                               outputs=None) -> tuple[dict, None]:
        threshold = check_threshold(threshold)
        outputs = self.check_outputs(outputs)
        self.model_for(class_name)
        started = time.perf_counter()
        detections, score = self.detector.detect(image, threshold)
        detected = time.perf_counter()
        result = {
            "class_name": class_name,
            "model": {"kind": self.kind, "version": self.version},
            "anomaly_score": round(score, 6),
            "raw_score": round(score, 6),
            "threshold": threshold,
            "raw_threshold": threshold,
            "is_anomaly": bool(score >= threshold),
        }
        if "detections" in outputs:
            result["detections"] = detections
        result["timing_ms"] = {"model": round((detected - started) * 1000, 2),
                               "outputs": round((time.perf_counter() - detected) * 1000, 2)}
        return result, None

    def describe_model(self) -> dict:
        config = self.manifest["config"]
        return {"image_size": self.manifest.get("preprocessing", {}).get("image_size"),
                "detector": {"labels": list(config["names"]), "anomalous_labels": list(config["anomalous_classes"]),
                             "input_size": list(config["input_size"]), "iou_threshold": config["iou_threshold"]}}


def load(root: Path, manifest: dict, threads: int | None = None) -> DetectorModel:
    config = manifest.get("config") or {}
    try:
        names = [str(n) for n in config["names"]]
        anomalous = [str(n) for n in config["anomalous_classes"]]
        input_size = (int(config["input_size"][0]), int(config["input_size"][1]))
        iou, most = float(config["iou_threshold"]), int(config["max_detections"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BundleError(f"the detector bundle's configuration is invalid: {exc!r}") from None
    try:
        detector = YoloDetector(bundle_file(root, manifest, GRAPH), names, anomalous, input_size, iou, most, threads)
    except DetectorError as exc:
        raise BundleError(f"the detector bundle cannot be served: {exc.message}") from None
    if detector.input_size != input_size:
        raise BundleError(f"the detector graph takes {detector.input_size} images but its manifest says {input_size}")
    return DetectorModel(manifest, detector, root)

"""Evaluate a detector bundle on a labelled YOLO-format set, through the serving code path.

Box metrics, per class and mean:
- `ap50`: average precision at IoU 0.5. Detections of every image (confidence ≥ 0.001, as
  Ultralytics validates) are taken in order of confidence; each is a true positive when it overlaps
  an unmatched ground-truth box of its class with IoU ≥ 0.5 (the one it overlaps most), else a false
  positive. AP is COCO's 101-point interpolated area under the precision–recall curve. `map50`
  is the mean over the classes that have ground-truth boxes.
- `precision` and `recall` at the confidence cut the endpoint applies by default (0.5).

Image metrics (the verdict): an image is anomalous when it has a box of an anomalous class; its
score is the answer's `anomaly_score`. `image_auroc` on the scores, and F1, precision, recall and
accuracy of `is_anomaly` at the default cut.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from inference.errors import IvadasError
from inference.kinds.detector.bundle import CONFIDENCE_CALIBRATION, DetectorModel
from inference.kinds.detector.yolo import EVALUATION_CONFIDENCE, DetectorError
from inference.vision.imageio import load_image_file
from pipelines import metrics
from pipelines.detector.dataset import MAX_LISTED_PROBLEMS, read_labelled_set

IOU_MATCH = 0.5
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` `[n, 4]` with every box of `b` `[m, 4]` (x0, y0, x1, y1) → `[n, m]`."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    overlap = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - overlap
    return np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)


def match_image(boxes: np.ndarray, confidences: np.ndarray, classes: np.ndarray, truth_boxes: np.ndarray,
                truth_classes: np.ndarray, iou_threshold: float = IOU_MATCH) -> np.ndarray:
    """True-positive flag of every detection of one image (detections in any order)."""
    hits = np.zeros(len(boxes), dtype=bool)
    taken = np.zeros(len(truth_boxes), dtype=bool)
    iou = box_iou(boxes, truth_boxes)
    for index in np.argsort(-confidences, kind="stable"):
        candidates = np.where((truth_classes == classes[index]) & ~taken, iou[index], -1.0)
        if candidates.size and candidates.max() >= iou_threshold:
            best = int(np.argmax(candidates))
            taken[best] = True
            hits[index] = True
    return hits


def average_precision(confidences: np.ndarray, hits: np.ndarray, truth_count: int) -> float | None:
    """COCO's 101-point interpolated AP of detections (any order) against `truth_count` boxes."""
    if truth_count == 0:
        return None
    if not len(confidences):
        return 0.0
    order = np.argsort(-confidences, kind="stable")
    true_pos = np.cumsum(hits[order])
    recall = true_pos / truth_count
    precision = true_pos / np.arange(1, len(order) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this recall or beyond
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.mean([envelope[i] if i < len(envelope) else 0.0 for i in at]))


def evaluate_detector(model: DetectorModel, data: str | Path, output_dir: str | Path | None = None,
                      quiet: bool = True) -> dict:
    """Score the labelled set at `data` and return (and write, with `output_dir`) `evaluation.json`."""
    detector = model.detector
    names = detector.names
    images = read_labelled_set(data, len(names))
    cut = CONFIDENCE_CALIBRATION.threshold
    per_class = {c: {"confidences": [], "hits": [], "truth": 0} for c in range(len(names))}
    image_labels, image_scores, problems = [], [], []
    for item in tqdm(images, desc="evaluate detector", unit="img", disable=quiet, leave=False):
        try:
            image = load_image_file(item.path)
        except IvadasError as exc:
            problems.append(f"{item.path}: {exc.message}")
            continue
        decoded = detector.decode(image, EVALUATION_CONFIDENCE)
        truth = item.pixel_boxes(*image.size)
        hits = match_image(decoded.boxes, decoded.confidences, decoded.classes, truth, item.classes)
        for c in range(len(names)):
            mine = decoded.classes == c
            per_class[c]["confidences"].append(decoded.confidences[mine])
            per_class[c]["hits"].append(hits[mine])
            per_class[c]["truth"] += int((item.classes == c).sum())
        image_labels.append(bool(detector.anomalous[item.classes].any()) if len(item.classes) else False)
        image_scores.append(decoded.anomaly_score)
    if problems:
        listed = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        raise DetectorError(f"{len(problems)} image(s) of the labelled set cannot be read: {listed}")
    classes = {}
    for c, name in enumerate(names):
        confidences = np.concatenate(per_class[c]["confidences"])
        hits = np.concatenate(per_class[c]["hits"])
        truth = per_class[c]["truth"]
        kept = confidences >= cut
        found = int(hits[kept].sum())
        classes[name] = {
            "ap50": average_precision(confidences, hits, truth),
            "precision": found / int(kept.sum()) if kept.any() else (None if truth == 0 else 0.0),
            "recall": found / truth if truth else None,
            "instances": truth,
            "detections": int(kept.sum()),
            "anomalous": bool(detector.anomalous[c]),
        }
    ap = [m["ap50"] for m in classes.values() if m["ap50"] is not None]
    labels, scores = np.array(image_labels), np.array(image_scores)
    verdicts = metrics.threshold_metrics(labels, scores >= cut)
    report = {
        "model": {"kind": model.kind, "version": model.version, "modality": model.modality},
        "split": {"name": "labelled", "description": f"the labelled set {Path(data)} ({len(labels)} images), "
                                                     "none of it seen by this import"},
        "confidence_cut": cut,
        "iou_match": IOU_MATCH,
        "detection_confidence_floor": EVALUATION_CONFIDENCE,
        "labels": classes,
        "images": int(len(labels)),
        "anomalous_images": int(labels.sum()),
        "mean": {
            "map50": float(np.mean(ap)) if ap else None,
            "image_auroc": metrics.image_auroc(labels, scores) if len(labels) else None,
            "f1": verdicts["f1"],
        },
        "image_metrics": verdicts,
    }
    if output_dir is not None:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    return report

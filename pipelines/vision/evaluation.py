"""Evaluate a bundle on test images through the serving code path; report and plots.

Two splits (`SPLITS`): `heldout` (the default) scores only the evaluation split recorded at
training, images that neither fitted the memory bank nor chose the threshold; `all` scores every
test image, as published tables do. The report says which one it used. Ranking metrics (image
AUROC, pixel AUROC, AUPRO) use raw scores and raw maps; F1, precision, recall and accuracy use the
class threshold.

Outputs in `output_dir`: `evaluation.json` (per class and mean, the split, plus the SageMaker
model-quality metrics block), `roc_<class>.png`, `histogram_<class>.png`, `examples_<class>.png`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from inference.model import load_model
from inference.vision.image_model import ImageModel
from inference.errors import DatasetError, IvadasError
from inference.vision.imageio import load_image_file

from pipelines import metrics
from pipelines.plots import histogram_plot, roc_plot
from pipelines.progress import Step
from pipelines.vision.datasets import ClassData, Sample, read_class

METRIC_KEYS = ("image_auroc", "pixel_auroc", "aupro", "f1")
#: Longest side of the grid pixel metrics are computed on (or the model's input size, if larger): maps
#: of tiled high-resolution images are scaled down to it, which bounds evaluation memory.
PIXEL_METRIC_SIDE = 512
SPLITS = {
    "heldout": "the evaluation split recorded at training: test images that neither fitted the model nor chose "
               "its threshold",
    "all": "every test image, comparable to published tables; it includes the validation images the threshold was "
           "chosen on (threshold_images per class), so F1, precision, recall and accuracy are optimistic; ranking "
           "metrics do not use the threshold",
}


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown evaluation split {split!r}; choose one of {list(SPLITS)}")
    return split


def evaluate_bundle(bundle_path, data_root, output_dir, classes=None, split: str = "heldout", quiet: bool = False,
                    plots: bool = True, detector: ImageModel | None = None) -> dict:
    """Score `classes` of `data_root` on `split` and write `evaluation.json` (and plots) to `output_dir`."""
    return evaluate_splits(bundle_path, data_root, output_dir, classes, (split,), quiet, plots, detector)[split]


def evaluate_splits(bundle_path, data_root, output_dir, classes=None, splits=("heldout", "all"), quiet: bool = False,
                    plots: bool = True, detector: ImageModel | None = None) -> dict[str, dict]:
    """One report per split, scoring every image once. With several splits, each report goes to
    `output_dir/<split>/`; with one, to `output_dir`."""
    splits = tuple(check_split(s) for s in splits)
    detector = detector or load_model(bundle_path)
    classes = classes or detector.classes
    output_dir = Path(output_dir)
    folders = {s: output_dir if len(splits) == 1 else output_dir / s for s in splits}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    per_class: dict[str, dict] = {s: {} for s in splits}
    for name in classes:
        detector.model_for(name)
        data = read_class(data_root, name)
        wanted = {s: evaluation_samples(detector, data, name, s) for s in splits}  # refusals before any scoring
        union = {sample.key: sample for chosen in wanted.values() for sample in chosen}
        scored = score_class(detector, data, name, list(union.values()), quiet, keep_images=plots)
        validation = _recorded(detector, name).get("validation")
        validation = None if validation is None else set(validation)
        for s in splits:
            result = scored.subset({sample.key for sample in wanted[s]})
            result.metrics["threshold_images"] = (
                None if validation is None else sum(sample.key in validation for sample in result.samples))
            result.metrics["problems"] = data.problems
            if plots:
                write_plots(result, folders[s], name, detector.model_for(name).calibration)
            per_class[s][name] = result.metrics
    reports = {}
    for s in splits:
        report = {
            "model": {"kind": detector.kind, "version": detector.version, "modality": detector.modality},
            "split": {"name": s, "description": SPLITS[s]},
            "classes": per_class[s],
            "mean": _mean_metrics(per_class[s]),
        }
        report["binary_classification_metrics"] = sagemaker_metrics(report["mean"], per_class[s])
        (folders[s] / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True))
        reports[s] = report
    return reports


def _recorded(detector: ImageModel, name: str) -> dict:
    return detector.manifest["classes"][name].get("split") or {}


def evaluation_samples(detector: ImageModel, data: ClassData, name: str, split: str = "heldout") -> list[Sample]:
    """The test images of `split`; `heldout` needs the split the bundle recorded at training."""
    check_split(split)
    if not data.test:  # said first: without test images no split is the problem
        raise DatasetError(f"class {name!r} has no test images to evaluate in {data.root} (test/good, test/<defect>)")
    if split == "all":
        samples = list(data.test)
    else:
        recorded = _recorded(detector, name).get("evaluation")
        if not recorded:
            raise DatasetError(
                f"class {name!r}: the bundle records no evaluation split, so the test images its threshold was "
                f"chosen on are unknown and held-out metrics cannot be computed; use --split all to score the whole "
                f"test set (the report says so)")
        by_key = {s.key: s for s in data.test}
        missing = [key for key in recorded if key not in by_key]
        if missing:
            raise DatasetError(f"class {name!r}: {len(missing)} image(s) of the recorded evaluation split are missing "
                               f"or not readable in {data.root}, e.g. {missing[0]}")
        samples = [by_key[key] for key in recorded]
    if not samples:
        raise DatasetError(f"class {name!r} has no test images to evaluate in {data.root}")
    return samples


@dataclass
class ScoredClass:
    """Raw scores (and maps, masks, thumbnails) of the test images of one class, in sample order."""

    samples: list[Sample]
    labels: np.ndarray
    raw_scores: np.ndarray
    raw_maps: list[np.ndarray | None]
    masks: list[np.ndarray | None]
    images: list[Image.Image | None]
    threshold: float
    calibration: object
    seconds_per_image: float
    metrics: dict = field(default_factory=dict)

    def subset(self, keys: set[str]) -> "ScoredClass":
        keep = [i for i, s in enumerate(self.samples) if s.key in keys]
        part = ScoredClass([self.samples[i] for i in keep], self.labels[keep], self.raw_scores[keep],
                           [self.raw_maps[i] for i in keep], [self.masks[i] for i in keep],
                           [self.images[i] for i in keep], self.threshold, self.calibration, self.seconds_per_image)
        part.metrics = class_metrics(part)
        return part


def score_class(detector: ImageModel, data: ClassData, name: str, samples: list[Sample], quiet: bool = False,
                keep_images: bool = True) -> ScoredClass:
    """Raw scores of `samples` through the serving scorer; maps only where they are needed.

    Maps cover the image in its own proportions (`inference.vision.preprocessing`); pixel metrics
    compare every map of the class with its mask on one grid: the first map's, scaled down so that
    its longer side is at most `PIXEL_METRIC_SIDE` (or the model's input size, if larger).
    """
    calibration = detector.model_for(name).calibration
    size = detector.manifest["preprocessing"]["image_size"]
    with_maps = keep_images or any(s.mask is not None for s in samples)
    white_level = detector.white_level(name)
    labels, scores, maps, masks, images, kept = [], [], [], [], [], []
    shape = None  # (height, width) of the class's metric grid
    started = time.perf_counter()
    with Step(f"evaluate {name}", len(samples), "image", quiet) as step:
        for sample in samples:
            step.update()
            try:
                image = load_image_file(sample.path, white_level=white_level)
            except IvadasError as exc:
                data.problem(sample.path, f"unreadable image: {exc}")
                continue
            raw = detector.score_images([image], name, with_maps)[0]
            amap = raw.raw_map
            if amap is not None:
                shape = shape or metric_shape(amap.shape, max(size, PIXEL_METRIC_SIDE))
                amap = resample_map(amap.astype(np.float32), shape)
            labels.append(int(sample.is_anomaly))
            scores.append(float(raw.raw_score))
            maps.append(amap)
            grid = shape or (size, size)
            masks.append(_mask(sample, grid) if (sample.mask is not None or not sample.is_anomaly) else None)
            images.append(image.resize(grid[::-1]) if keep_images else None)
            kept.append(sample)
    elapsed = time.perf_counter() - started
    return ScoredClass(kept, np.array(labels, dtype=int), np.array(scores, dtype=np.float64), maps, masks, images,
                       calibration.threshold, calibration, elapsed / max(len(kept), 1))


def metric_shape(map_shape: tuple[int, int], longest: int) -> tuple[int, int]:
    """`map_shape` scaled down (proportions kept) so that its longer side is at most `longest`."""
    height, width = map_shape
    if max(height, width) <= longest:
        return height, width
    scale = longest / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resample_map(amap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`amap` resized bilinearly to `shape` (height, width); unchanged when it has that shape."""
    if amap.shape == tuple(shape):
        return amap
    return np.asarray(Image.fromarray(amap, mode="F").resize(shape[::-1], Image.Resampling.BILINEAR), np.float32)


def class_metrics(scored: ScoredClass) -> dict:
    """Ranking metrics on raw scores and maps; thresholded metrics on the class threshold."""
    labels, scores = scored.labels, scored.raw_scores
    # pixel truth: anomalous images with a mask, and normal images (all-normal masks)
    pixel = [i for i, s in enumerate(scored.samples) if s.mask is not None and scored.raw_maps[i] is not None]
    normal = [i for i, s in enumerate(scored.samples) if not s.is_anomaly and scored.raw_maps[i] is not None]
    pixel_masks = pixel_maps = None
    if pixel:
        chosen = pixel + normal
        pixel_masks = np.stack([scored.masks[i] for i in chosen])
        pixel_maps = np.stack([scored.raw_maps[i] for i in chosen])
    return {
        "image_auroc": metrics.image_auroc(labels, scores) if len(labels) else None,
        "pixel_auroc": metrics.pixel_auroc(pixel_masks, pixel_maps) if pixel else None,
        "aupro": metrics.aupro(pixel_masks, pixel_maps) if pixel else None,
        **metrics.threshold_metrics(labels, scores >= scored.threshold),
        "images": int(len(labels)),
        "anomalous": int(labels.sum()),
        "threshold": scored.threshold,
        "calibration": scored.calibration.method,
        "seconds_per_image": scored.seconds_per_image,
        "misclassified": misclassified(scored),
    }


#: Most wrong images a report lists per class (the worst first).
MAX_MISCLASSIFIED = 50


def misclassified(scored: ScoredClass) -> list[dict]:
    """The test images the class threshold decides wrongly: false alarms and missed defects, the
    ones furthest on the wrong side of the threshold first."""
    wrong = []
    for sample, label, score in zip(scored.samples, scored.labels, scored.raw_scores):
        if bool(score >= scored.threshold) != bool(label):
            wrong.append({"image": sample.key, "defect": sample.defect, "raw_score": float(score),
                          "error": "missed defect" if label else "false alarm",
                          "margin": abs(float(score) - float(scored.threshold))})
    return sorted(wrong, key=lambda w: -w["margin"])[:MAX_MISCLASSIFIED]


def _mask(sample, shape: tuple[int, int]) -> np.ndarray:
    """The sample's defect mask on the metric grid `shape` (height, width); all normal without one."""
    if sample.mask is None:
        return np.zeros(shape, np.uint8)
    with Image.open(sample.mask) as mask:
        return (np.asarray(mask.convert("L").resize(shape[::-1], Image.Resampling.NEAREST)) > 127).astype(np.uint8)


def _mean_metrics(per_class: dict) -> dict:
    mean = {}
    for key in METRIC_KEYS:
        values = [m[key] for m in per_class.values() if m.get(key) is not None]
        mean[key] = float(np.mean(values)) if values else None
    return mean


def sagemaker_metrics(mean: dict, per_class: dict) -> dict:
    """SageMaker model-quality format: `{"<metric>": {"value": v, "standard_deviation": s}}`."""
    block = {}
    for key in METRIC_KEYS:
        values = [m[key] for m in per_class.values() if m.get(key) is not None]
        if values:
            block[key] = {"value": float(np.mean(values)), "standard_deviation": float(np.std(values))}
    return block


def write_plots(result: ScoredClass, output_dir: Path, name: str, calibration) -> None:
    from inference.vision.render import colourise

    labels, scores = result.labels, result.raw_scores
    roc_plot(labels, scores, result.metrics["image_auroc"], f"{name}: image ROC", output_dir / f"roc_{name}.png")
    histogram_plot(labels, scores, calibration.threshold, "images", f"{name}: score histogram", output_dir / f"histogram_{name}.png")
    if len(scores) and result.raw_maps[0] is not None and result.images[0] is not None:
        _example_grid(result, output_dir / f"examples_{name}.png", colourise, calibration)


def _example_grid(result: ScoredClass, path: Path, colourise, calibration, count: int = 8) -> None:
    order = np.argsort(-result.raw_scores)
    picks = list(dict.fromkeys(list(order[: count // 2]) + list(order[-(count // 2):])))
    width, height = result.images[0].size
    grid = Image.new("RGB", (width * len(picks), height * 2), "white")
    for column, index in enumerate(picks):
        image = result.images[index].convert("RGB")
        heat = Image.fromarray(colourise(calibration.normalise(result.raw_maps[index]))).resize(image.size)
        grid.paste(image, (column * width, 0))
        grid.paste(Image.blend(image, heat, 0.5), (column * width, height))
    grid.save(path)

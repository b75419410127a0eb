"""Evaluate a bundle on the evaluation split through the serving code path; report and plots.

Outputs in `output_dir`: `evaluation.json` (per class and mean, plus the SageMaker model-quality
metrics block), `roc_<class>.png`, `histogram_<class>.png`, `examples_<class>.png`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from inference.model import load_model
from inference.vision.image_model import ImageModel
from inference.errors import DatasetError, IvadasError
from inference.vision.imageio import load_image_file

from pipelines import metrics
from pipelines.vision.datasets import read_class

METRIC_KEYS = ("image_auroc", "pixel_auroc", "aupro", "f1")


def evaluate_bundle(bundle_path, data_root, output_dir, classes=None, plots: bool = True, quiet: bool = False,
                    detector: ImageModel | None = None) -> dict:
    detector = detector or load_model(bundle_path)
    classes = classes or detector.classes
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    per_class = {}
    for name in classes:
        detector.model_for(name)
        result = evaluate_class(detector, data_root, name, quiet)
        if plots:
            write_plots(result, output_dir, name)
        per_class[name] = result["metrics"]
    report = {
        "model": {"kind": detector.kind, "version": detector.version, "modality": detector.modality},
        "classes": per_class,
        "mean": _mean_metrics(per_class),
    }
    report["binary_classification_metrics"] = sagemaker_metrics(report["mean"], per_class)
    (output_dir / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    return report


def evaluation_samples(detector: ImageModel, data, name: str):
    """The class's evaluation split as recorded at training (falls back to the whole test set)."""
    split = detector.manifest["classes"][name].get("split", {})
    wanted = set(split.get("evaluation", [])) if split else None
    samples = [s for s in data.test if wanted is None or s.key in wanted]
    if not samples:
        raise DatasetError(f"class {name!r} has no test images to evaluate in {data.root}")
    return samples


def evaluate_class(detector: ImageModel, data_root, name: str, quiet: bool = False) -> dict:
    data = read_class(data_root, name)
    samples = evaluation_samples(detector, data, name)
    calibration = detector.model_for(name).calibration
    size = detector.manifest["preprocessing"]["image_size"]
    labels, scores, maps, masks, images, kept = [], [], [], [], [], []
    started = time.perf_counter()
    for sample in tqdm(samples, desc=f"evaluate {name}", unit="img", disable=quiet, leave=False):
        try:
            image = load_image_file(sample.path)
        except IvadasError as exc:
            data.problem(sample.path, f"unreadable image: {exc}")
            continue
        raw = detector.score_images([image], name)[0]
        labels.append(int(sample.is_anomaly))
        scores.append(float(calibration.normalise(raw.raw_score)))
        maps.append(calibration.normalise(raw.raw_map).astype(np.float32))
        masks.append(_mask(sample, size))
        images.append(image.resize((size, size)))
        kept.append(sample)
    elapsed = time.perf_counter() - started
    labels, scores = np.array(labels), np.array(scores)
    with_masks = [i for i, s in enumerate(kept) if s.mask is not None or not s.is_anomaly]
    has_pixel_truth = any(kept[i].mask is not None for i in with_masks)
    pixel_masks = np.stack([masks[i] for i in with_masks]) if has_pixel_truth else None
    pixel_maps = np.stack([maps[i] for i in with_masks]) if has_pixel_truth else None
    result_metrics = {
        "image_auroc": metrics.image_auroc(labels, scores),
        "pixel_auroc": metrics.pixel_auroc(pixel_masks, pixel_maps) if has_pixel_truth else None,
        "aupro": metrics.aupro(pixel_masks, pixel_maps) if has_pixel_truth else None,
        **metrics.threshold_metrics(labels, scores >= 0.5),
        "images": int(len(labels)),
        "anomalous": int(labels.sum()),
        "threshold": calibration.threshold,
        "calibration": calibration.method,
        "seconds_per_image": elapsed / max(len(labels), 1),
        "problems": data.problems,
    }
    return {"metrics": result_metrics, "labels": labels, "scores": scores, "maps": maps, "images": images, "samples": kept}


def _mask(sample, size: int) -> np.ndarray:
    if sample.mask is None:
        return np.zeros((size, size), np.uint8)
    with Image.open(sample.mask) as mask:
        return (np.asarray(mask.convert("L").resize((size, size), Image.Resampling.NEAREST)) > 127).astype(np.uint8)


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


def write_plots(result: dict, output_dir: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from inference.vision.render import colourise

    labels, scores = result["labels"], result["scores"]
    if labels.min() != labels.max():
        fpr, tpr = metrics.roc_points(labels, scores)
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot(fpr, tpr, label=f"AUROC {result['metrics']['image_auroc']:.3f}")
        ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{name}: image ROC")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(output_dir / f"roc_{name}.png", dpi=110)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(0, 1, 41)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="normal")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="anomalous")
    ax.axvline(0.5, color="black", linestyle="--", linewidth=1, label="threshold")
    ax.set(xlabel="anomaly score (normalised)", ylabel="images", title=f"{name}: score histogram")
    ax.legend()
    fig.tight_layout()
    fig.savefig(output_dir / f"histogram_{name}.png", dpi=110)
    plt.close(fig)
    _example_grid(result, output_dir / f"examples_{name}.png", colourise)


def _example_grid(result: dict, path: Path, colourise, count: int = 8) -> None:
    order = np.argsort(-result["scores"])
    picks = list(order[: count // 2]) + list(order[-(count // 2):])
    size = result["images"][0].size[0]
    grid = Image.new("RGB", (size * len(picks), size * 2), "white")
    for column, index in enumerate(picks):
        image = result["images"][index].convert("RGB")
        heat = Image.fromarray(colourise(result["maps"][index]))
        grid.paste(image, (column * size, 0))
        grid.paste(Image.blend(image, heat, 0.5), (column * size, size))
    grid.save(path)

"""Train a bundle: for every class, embed the fit split, build the memory bank, calibrate.

This is glue: the maths lives in `inference` (preprocessing, extractor, patch store, sampler,
softpatch, model, calibration) and is the same code that serves. Images are read, cut into views
and embedded a batch at a time, and the embeddings stream into a `PatchStore`, so memory is bounded
by `memory_limit_mb`, not by the number of images. Calibration scores its images through the serving
scorer. Progress: a bar on a terminal, one line per step otherwise (`pipelines.progress`); problems
with images are reported, not hidden.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from inference.bundle import write_bundle
from inference.calibration import calibrate
from inference.errors import DatasetError, IvadasError
from inference.kinds.patchcore.bundle import PatchScorer, TrainedClass, contents
from inference.kinds.patchcore.config import DEFAULT_CONFIG, ModelConfig, preprocessing_of
from inference.kinds.patchcore.extractor import FeatureExtractor
from inference.kinds.patchcore.model import (ClassModel, coreset_bank, filters_images, filters_patches,
                                             memory_limit_bytes, noise_filter, noise_image_steps)
from inference.kinds.patchcore.patch_store import PatchStore
from inference.kinds.patchcore.sampler import coreset_size
from inference.vision.backbone import BackboneSpec, OnnxBackbone
from inference.vision.imageio import learn_white_level, load_image_file
from pipelines.kinds import TrainingJob, TrainingReport
from pipelines.progress import Step, progress
from pipelines.vision.backbones import BackboneSource, resolve_backbone
from pipelines.vision.datasets import ClassData, Sample, read_class
from pipelines.vision.splits import ClassSplit, split_class, split_from_keys

log = logging.getLogger(__name__)

INT8_CALIBRATION_IMAGES = 32  # training images (spread over the classes) that set the INT8 activation ranges


def read_images(samples: list[Sample], data: ClassData, white_level: int | None = None, step: Step | None = None):
    """(sample, decoded image) of `samples`, one at a time; an image that fails to decode is reported and skipped."""
    for sample in samples:
        try:
            image = load_image_file(sample.path, white_level=white_level)
        except (IvadasError, OSError) as exc:
            data.problem(sample.path, f"unreadable image: {exc}")
            image = None
        if step is not None:
            step.update()
        if image is not None:
            yield sample, image


def load_images(samples: list[Sample], data: ClassData, desc: str, quiet: bool = False, white_level: int | None = None):
    """Decoded images of `samples` (all in memory: for the few images INT8 calibration and tests need)."""
    with Step(desc, len(samples), "image", quiet) as step:
        pairs = list(read_images(samples, data, white_level, step))
    return [image for _, image in pairs], [sample for sample, _ in pairs]


def build_extractor(onnx_path: Path, spec: BackboneSpec, config: ModelConfig) -> FeatureExtractor:
    return FeatureExtractor(OnnxBackbone(onnx_path, spec), config.image_size, config.patch_size, config.embedding_dim,
                            preprocessing=preprocessing_of(config, spec.mean))


def class_intensity(split: ClassSplit) -> dict | None:
    """How high-bit-depth images of the class become 8-bit: learnt from the images that fit the model."""
    return learn_white_level([s.path for s in split.fit])


def train_class(extractor: FeatureExtractor, data: ClassData, split: ClassSplit, config: ModelConfig,
                quiet: bool = False, intensity: dict | None = None) -> tuple[TrainedClass, dict]:
    timings = {}
    white_level = (intensity or {}).get("white_level")
    with PatchStore(config.coreset_projection_dim, config.seed, memory_limit_bytes(config)) as store:
        started = time.perf_counter()
        with Step(f"{data.name}: embed", len(split.fit), "image", quiet) as step:
            views_per_image: list[int] = []  # tiles: several views per image
            for embeddings, _ in extractor.embed_batches((image for _, image in read_images(split.fit, data, white_level, step)),
                                                         views_per_image):
                store.append(embeddings)
            step.detail = f"{store.views} views, {store.rows} patches" + (" streamed to disk" if store.on_disk else "")
        if store.views < 1:
            raise DatasetError(f"class {data.name!r}: no readable training images")
        store.finish()
        timings["embed_s"] = time.perf_counter() - started
        started = time.perf_counter()
        keep = weights = None
        if config.kind == "softpatch":
            with Step(f"{data.name}: noise", _noise_steps(config, store, len(views_per_image)), "step", quiet) as step:
                image_of_view = np.repeat(np.arange(len(views_per_image)), views_per_image)
                keep, weights = noise_filter(store, config, step.update, image_of_view)
                kept_views = keep.reshape(store.views, -1).any(axis=1)
                left_out = len(views_per_image) - len(np.unique(image_of_view[kept_views]))
                step.detail = (f"{left_out} of {len(views_per_image)} images and {int((~keep).sum())} of {len(keep)} "
                               "patches left out")
        with Step(f"{data.name}: coreset", coreset_size(store.rows, config.coreset_ratio), "entry", quiet) as step:
            bank = coreset_bank(store, config, keep, weights, step.update)
        timings["patches"], timings["streamed_mb"] = store.rows, store.streamed_bytes / 2**20
    timings["memory_bank_s"] = time.perf_counter() - started
    started = time.perf_counter()
    model = ClassModel(bank, config, _grid(extractor))
    model.calibration, score_stats = _calibrate(extractor, model, data, split, config, quiet, white_level)
    timings["calibration_s"] = time.perf_counter() - started
    trained = TrainedClass(data.name, model, score_stats, {**split.to_dict(), "problems": data.problems}, intensity)
    return trained, timings


def _noise_steps(config: ModelConfig, store: PatchStore, images: int) -> int:
    """What SoftPatch's noise filter counts: the image filter's steps, then positions."""
    image_steps = noise_image_steps(config, store) if filters_images(config, images) else 0
    return image_steps + (store.positions if filters_patches(config) else 0)


def _grid(extractor: FeatureExtractor) -> tuple[int, int]:
    """The patch grid of one view (every view has the same size)."""
    size = extractor.image_size
    return tuple(extractor.embed_views(np.full((1, size, size, 3), 128, np.uint8))[1])


def _calibrate(extractor, model: ClassModel, data: ClassData, split: ClassSplit, config: ModelConfig, quiet: bool,
               white_level: int | None = None):
    normal = split.calibration + [s for s in split.validation if not s.is_anomaly]
    anomalous = [s for s in split.validation if s.is_anomaly]
    if not normal:
        raise DatasetError(f"class {data.name!r}: no normal image is left for calibration; add images to train/good")
    scorer = PatchScorer(extractor, model)
    with Step(f"{data.name}: calibrate", len(normal) + len(anomalous), "image", quiet) as step:
        normal_scores = _raw_scores(scorer, normal, data, white_level, step)
        anomalous_scores = _raw_scores(scorer, anomalous, data, white_level, step)
        calibration = calibrate(normal_scores, anomalous_scores, config.normal_quantile)
        step.detail = f"threshold {calibration.threshold:.4f}, {calibration.method}"
    stats = {
        "normal_mean": float(np.mean(normal_scores)),
        "normal_std": float(np.std(normal_scores)),
        "normal_max": float(np.max(normal_scores)),
        "anomalous_mean": float(np.mean(anomalous_scores)) if len(anomalous_scores) else None,
    }
    return calibration, stats


def _raw_scores(scorer: PatchScorer, samples, data, white_level, step) -> np.ndarray:
    """Raw scores of `samples` as the endpoint computes them: one image at a time, through the serving scorer
    (without the anomaly map, which the image score does not depend on)."""
    return np.array([scorer.score([image], with_maps=False)[0].raw_score
                     for _, image in read_images(samples, data, white_level, step)])


def train_bundle(
    data_root: str | Path,
    classes: list[str],
    config: ModelConfig,
    source: BackboneSource,
    output: str | Path,
    lineage: dict | None = None,
    quantize: bool = False,
    quiet: bool = False,
    split_keys: dict | None = None,
) -> TrainingReport:
    """Train every class and write `output` (`model.tar.gz`, or a directory for SageMaker).

    `split_keys` (class → split of file keys, from the preprocess step) fixes the splits;
    without it they are computed here with the same deterministic rule.
    """
    if not classes:
        raise DatasetError("no classes to train")
    datasets = {name: read_class(data_root, name) for name in classes}  # every class checked before any work
    onnx_path, spec = resolve_backbone(source)
    splits = {
        name: split_from_keys(data, split_keys[name]) if split_keys and name in split_keys else split_class(data, config.seed)
        for name, data in datasets.items()
    }
    intensities = {name: class_intensity(split) for name, split in splits.items()}
    if quantize:
        from pipelines.vision.quantize import quantize_backbone

        # one backbone serves every class: calibrate its activation ranges on all of them
        per_class = max(1, INT8_CALIBRATION_IMAGES // len(classes))
        calibration_images = []
        for name in classes:
            calibration_images += load_images(splits[name].fit[:per_class], datasets[name], "int8 calibration", quiet,
                                              (intensities[name] or {}).get("white_level"))[0]
        onnx_path, spec = quantize_backbone(onnx_path, spec, calibration_images, config.image_size,
                                            preprocessing=preprocessing_of(config, spec.mean))
    extractor = build_extractor(onnx_path, spec, config)
    trained, timings = [], {}
    for name in progress(classes, f"train {config.kind}", unit="class", quiet=quiet):
        started = time.perf_counter()
        result, class_timings = train_class(extractor, datasets[name], splits[name], config, quiet, intensities[name])
        class_timings["total_s"] = time.perf_counter() - started
        trained.append(result)
        timings[name] = class_timings
        log.info("trained %s/%s in %.1fs (%d bank entries)", config.kind, name, class_timings["total_s"], len(result.model.bank))
    lineage = {"data_uri": str(data_root), "classes": list(classes), **(lineage or {})}
    manifest = write_bundle(output, *contents(config, onnx_path, spec, trained, lineage=lineage))
    return TrainingReport(manifest, timings, {name: d.problems for name, d in datasets.items() if d.problems})


FLOAT_SETTINGS = ("coreset_ratio", "noise_fraction", "noise_images", "normal_quantile", "tile_overlap")
INT_SETTINGS = ("image_size", "seed", "tile_size", "memory_limit_mb", "noise_support")
TEXT_SETTINGS = ("noise_method", "noise_image_rule", "preprocessing")
YES_NO_SETTINGS = ("soft_weights",)
#: Hyperparameters that choose the backbone rather than the model (see `backbone_source`).
BACKBONE_SETTINGS = ("backbone", "weights", "layers", "mean", "std", "int8")


class SettingError(ValueError):
    """A hyperparameter that cannot be used as given."""


def model_config(kind: str, hp: dict[str, str]) -> ModelConfig:
    """The model configuration of `kind` from string hyperparameters (unknown keys are refused)."""
    values = DEFAULT_CONFIG.to_dict()
    values["kind"] = kind
    for key in FLOAT_SETTINGS + INT_SETTINGS:
        if key in hp:
            try:
                values[key] = (float if key in FLOAT_SETTINGS else int)(hp[key])
            except ValueError:
                raise SettingError(f"hyperparameter {key}={hp[key]!r} is not a number") from None
    for key in TEXT_SETTINGS:
        if key in hp:
            values[key] = hp[key]
    for key in YES_NO_SETTINGS:
        if key in hp:
            values[key] = yes_no(hp, key)
    return ModelConfig.from_dict(values)


def yes_no(hp: dict[str, str], key: str) -> bool:
    """A true/false hyperparameter (absent: false); anything else is refused rather than read as false."""
    text = hp.get(key, "false")
    if text.lower() not in ("true", "false"):
        raise SettingError(f"hyperparameter {key}={text!r} is not true or false")
    return text.lower() == "true"


def backbone_source(hp: dict[str, str]) -> tuple[BackboneSource, bool]:
    """The backbone to extract features with, and whether to quantize it to INT8."""
    extra = {}
    for key in ("mean", "std"):
        if hp.get(key):
            try:
                extra[key] = tuple(float(v) for v in hp[key].split(","))
            except ValueError:
                raise SettingError(f"hyperparameter {key}={hp[key]!r} is not three comma-separated numbers") from None
    if hp.get("layers"):
        extra["layers"] = tuple(layer for layer in hp["layers"].split(",") if layer)
    source = BackboneSource(hp.get("backbone", "wide_resnet50_2"), hp.get("weights", "auto"), **extra)
    given = [key for key in ("mean", "std") if key in extra]
    if given and not source.is_custom_onnx:  # a built-in backbone normalises as it was trained, whatever is asked
        raise SettingError(f"hyperparameter(s) {', '.join(given)} apply to a custom ONNX backbone only, "
                           f"not to the built-in {source.name}")
    return source, yes_no(hp, "int8")


def train(job: TrainingJob) -> TrainingReport:
    known = set(FLOAT_SETTINGS + INT_SETTINGS + TEXT_SETTINGS + YES_NO_SETTINGS + BACKBONE_SETTINGS)
    unknown = sorted(set(job.hyperparameters) - known)
    if unknown:
        raise SettingError(f"{job.kind} has no setting(s) {unknown}; it knows {sorted(known)}")
    config = model_config(job.kind, job.hyperparameters)
    source, quantize = backbone_source(job.hyperparameters)
    return train_bundle(job.data_root, job.classes, config, source, job.output, lineage=job.lineage, quantize=quantize,
                        quiet=job.quiet, split_keys=job.split_manifest)

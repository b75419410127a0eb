"""Train the `autoencoder` kind: per class, fit a convolutional autoencoder on the normal images of
the fit split, export it with its scoring to one ONNX graph, and calibrate the threshold on held-out
images through that graph (the serving scorer), exactly as PatchCore's threshold is calibrated.

Settings (strings, as SageMaker passes hyperparameters): `level` 1–5, `image_size`, and the level's
parts on their own (`base_channels`, `latent_channels`, `epochs`), `batch_size`, `learning_rate`,
`map_sigma`, `normal_quantile`, `seed`. Defaults and reasons: `inference/kinds/autoencoder/config.py`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from inference.bundle import write_bundle
from inference.calibration import calibrate
from inference.errors import DatasetError, IvadasError
from inference.kinds.autoencoder.bundle import ReconstructionScorer, TrainedClass, contents
from inference.kinds.autoencoder.config import AutoencoderConfig
from inference.runtime import open_session
from inference.vision.imageio import learn_white_level, load_image_file, to_model_input, to_rgb
from pipelines.kinds import TrainingJob, TrainingReport
from pipelines.kinds.autoencoder.network import Autoencoder, ReconstructionError, export, parameter_count
from pipelines.vision.datasets import ClassData, Sample, read_class
from pipelines.vision.splits import ClassSplit, split_class, split_from_keys

log = logging.getLogger(__name__)

INT_SETTINGS = ("level", "image_size", "base_channels", "latent_channels", "epochs", "batch_size", "seed")
FLOAT_SETTINGS = ("learning_rate", "map_sigma", "normal_quantile")
#: The exported graph must score as the trained network does (relative difference of image scores)
EXPORT_TOLERANCE = 1e-3
EXPORT_CHECK_IMAGES = 4


class SettingError(ValueError):
    """A hyperparameter that cannot be used as given."""


def config_from(hp: dict[str, str]) -> AutoencoderConfig:
    unknown = sorted(set(hp) - set(INT_SETTINGS + FLOAT_SETTINGS))
    if unknown:
        raise SettingError(f"autoencoder has no setting(s) {unknown}; it knows {sorted(INT_SETTINGS + FLOAT_SETTINGS)}")
    values = {}
    for key, text in hp.items():
        try:
            values[key] = int(text) if key in INT_SETTINGS else float(text)
        except ValueError:
            kind = "a whole number" if key in INT_SETTINGS else "a number"
            raise SettingError(f"hyperparameter {key}={text!r} is not {kind}") from None
    try:
        return AutoencoderConfig(**values)
    except ValueError as exc:
        raise SettingError(f"autoencoder settings: {exc}") from None


# ------------------------------------------------------------------------------------ data


def load_images(samples: list[Sample], data: ClassData, white_level: int | None) -> list[Image.Image]:
    """Decoded images of `samples` (as serving decodes them); an unreadable one is reported and skipped."""
    images = []
    for sample in samples:
        try:
            images.append(load_image_file(sample.path, white_level=white_level))
        except (IvadasError, OSError) as exc:
            data.problem(sample.path, f"unreadable image: {exc}")
    return images


def pixels(images: list[Image.Image], size: int) -> np.ndarray:
    """uint8 `[n, 3, size, size]`, resized as `inference.vision.imageio.to_model_input` resizes (kept
    as bytes: a class's training images take a quarter of the memory they would as floats)."""
    return np.stack([np.asarray(to_rgb(image).resize((size, size), Image.Resampling.BILINEAR)) for image in images]
                    ).transpose(0, 3, 1, 2).copy()


def is_grey(batch: np.ndarray) -> bool:
    return bool(np.array_equal(batch[:, 0], batch[:, 1]) and np.array_equal(batch[:, 0], batch[:, 2]))


# -------------------------------------------------------------------------------- training


def fit(module: ReconstructionError, batch: np.ndarray, config: AutoencoderConfig, desc: str, quiet: bool) -> dict:
    """Minimise the mean squared reconstruction error with Adam on a one-cycle learning-rate schedule."""
    level = config.resolved
    torch.manual_seed(config.seed)
    order = np.random.default_rng(config.seed)
    data = torch.from_numpy(batch)
    steps_per_epoch = int(np.ceil(len(batch) / config.batch_size))
    optimiser = torch.optim.Adam(module.net.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=level.epochs * steps_per_epoch)
    losses = []
    module.train()
    for _ in tqdm(range(level.epochs), desc=desc, unit="epoch", disable=quiet, leave=False):
        total = 0.0
        for chunk in np.array_split(order.permutation(len(batch)), steps_per_epoch):
            x = module.network_input(data[chunk].float() / 255.0)
            loss = torch.mean((module.net(x) - x) ** 2)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(chunk)
        losses.append(total / len(batch))
    module.eval()
    return {"epochs": level.epochs, "first_loss": losses[0], "final_loss": losses[-1],
            "loss_curve": [round(v, 6) for v in losses[:: max(1, len(losses) // 20)]]}


def check_export(module: ReconstructionError, scorer: ReconstructionScorer, images: list[Image.Image], name: str) -> float:
    """Largest relative difference between the trained network's image scores and the graph's."""
    sample = images[:EXPORT_CHECK_IMAGES]
    with torch.no_grad():
        trained = module(torch.from_numpy(to_model_input(sample, scorer.image_size, (0, 0, 0), (1, 1, 1))))[1].numpy()
    exported = np.array([r.raw_score for r in scorer.score(sample, with_maps=False)])
    error = float(np.max(np.abs(exported - trained) / np.maximum(np.abs(trained), 1e-12)))
    if error > EXPORT_TOLERANCE:
        raise RuntimeError(f"class {name!r}: the exported graph scores differ from the trained network's by {error:.2e}")
    return error


def train_class(data: ClassData, split: ClassSplit, config: AutoencoderConfig, quiet: bool = False) -> tuple[TrainedClass, dict]:
    timings = {}
    started = time.perf_counter()
    intensity = learn_white_level([s.path for s in split.fit])
    white_level = (intensity or {}).get("white_level")
    images = load_images(split.fit, data, white_level)
    if len(images) < 2:
        raise DatasetError(f"class {data.name!r}: {len(images)} readable training image(s); the autoencoder needs at least 2")
    batch = pixels(images, config.image_size)
    grey = is_grey(batch)
    level = config.resolved
    module = ReconstructionError(Autoencoder(1 if grey else 3, level.base_channels, level.latent_channels), grey,
                                 config.map_sigma)
    timings["load_s"] = time.perf_counter() - started
    started = time.perf_counter()
    training = fit(module, batch, config, f"{data.name}: fit", quiet)
    timings["fit_s"] = time.perf_counter() - started
    del batch
    started = time.perf_counter()
    graph = export(module, config.image_size)
    scorer = ReconstructionScorer(open_session(graph, what=f"class {data.name!r}'s graph"), config.image_size)
    training.update(parameters=parameter_count(module.net), images=len(images),
                    export_relative_error=check_export(module, scorer, images, data.name))
    scorer.calibration, score_stats = _calibrate(scorer, data, split, config, white_level)
    timings["calibration_s"] = time.perf_counter() - started
    trained = TrainedClass(data.name, graph, scorer.calibration, "grey" if grey else "rgb", score_stats,
                           {**split.to_dict(), "problems": data.problems}, intensity, training)
    return trained, timings


def _calibrate(scorer: ReconstructionScorer, data: ClassData, split: ClassSplit, config: AutoencoderConfig,
               white_level: int | None):
    normal = split.calibration + [s for s in split.validation if not s.is_anomaly]
    anomalous = [s for s in split.validation if s.is_anomaly]
    if not normal:
        raise DatasetError(f"class {data.name!r}: no normal image is left for calibration; add images to train/good")
    normal_scores = [r.raw_score for r in scorer.score(load_images(normal, data, white_level), with_maps=False)]
    anomalous_scores = [r.raw_score for r in scorer.score(load_images(anomalous, data, white_level), with_maps=False)]
    if not normal_scores:
        raise DatasetError(f"class {data.name!r}: none of its held-out normal images is readable")
    calibration = calibrate(normal_scores, anomalous_scores, config.normal_quantile)
    stats = {
        "normal_mean": float(np.mean(normal_scores)),
        "normal_std": float(np.std(normal_scores)),
        "normal_max": float(np.max(normal_scores)),
        "anomalous_mean": float(np.mean(anomalous_scores)) if anomalous_scores else None,
    }
    return calibration, stats


def train_bundle(data_root: str | Path, classes: list[str], config: AutoencoderConfig, output: str | Path,
                 lineage: dict | None = None, quiet: bool = False, split_keys: dict | None = None) -> TrainingReport:
    """Train every class and write `output` (`model.tar.gz`, or a directory for SageMaker)."""
    if not classes:
        raise DatasetError("no classes to train")
    datasets = {name: read_class(data_root, name) for name in classes}  # every class checked before any work
    splits = {name: split_from_keys(data, split_keys[name]) if split_keys and name in split_keys else split_class(data, config.seed)
              for name, data in datasets.items()}
    trained, timings = [], {}
    for name in tqdm(classes, desc="train autoencoder", unit="class", disable=quiet):
        started = time.perf_counter()
        result, class_timings = train_class(datasets[name], splits[name], config, quiet)
        class_timings["total_s"] = time.perf_counter() - started
        trained.append(result)
        timings[name] = class_timings
        log.info("trained autoencoder/%s in %.1fs (final loss %.5f)", name, class_timings["total_s"], result.training["final_loss"])
    lineage = {"data_uri": str(data_root), "classes": list(classes), **(lineage or {})}
    manifest = write_bundle(output, *contents(config, trained, lineage=lineage))
    return TrainingReport(manifest, timings, {name: d.problems for name, d in datasets.items() if d.problems})


def train(job: TrainingJob) -> TrainingReport:
    config = config_from(job.hyperparameters)
    return train_bundle(job.data_root, job.classes, config, job.output, lineage=job.lineage, quiet=job.quiet,
                        split_keys=job.split_manifest)

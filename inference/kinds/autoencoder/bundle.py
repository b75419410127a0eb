"""The autoencoder part of a bundle: what training writes and what serving loads.

Files::

    classes/<class>/autoencoder.onnx   the class's network and its scoring, one graph

The graph takes `image` `[N, 3, S, S]` (RGB resized to S = `image_size`, scaled to [0, 1]) and
returns `score_map` `[N, S, S]`, the squared reconstruction error (averaged over the channels the
network sees: one for grey classes, three otherwise) smoothed with a Gaussian, and `score` `[N]`,
its maximum. The map is the heatmap; the score is calibrated per class as for every image kind.
Images are scored one at a time, at training and at serving alike, so the two give the same
numbers to the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from inference.bundle import bundle_file
from inference.calibration import Calibration
from inference.errors import BundleError
from inference.runtime import open_session
from inference.vision.image_model import ImageModel, RawResult
from inference.vision.imageio import to_model_input

from .config import KIND, AutoencoderConfig

INPUT, MAP_OUTPUT, SCORE_OUTPUT = "image", "score_map", "score"
UNIT = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # mean and std: pixels enter the graph as [0, 1]


def graph_path(class_name: str) -> str:
    return f"classes/{class_name}/autoencoder.onnx"


@dataclass
class TrainedClass:
    """What training produced for one class, ready to be written into a bundle."""

    name: str
    graph: bytes
    calibration: Calibration
    colour: str  # "grey" or "rgb": what the network sees
    score_stats: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)
    intensity: dict | None = None
    training: dict = field(default_factory=dict)


def contents(config: AutoencoderConfig, classes: list[TrainedClass], metrics: dict | None = None,
             lineage: dict | None = None) -> tuple[dict, dict]:
    """(manifest fields, files) of an autoencoder bundle, for `inference.bundle.write_bundle`."""
    files, entries = {}, {}
    for trained in classes:
        files[graph_path(trained.name)] = trained.graph
        entries[trained.name] = {
            "graph": graph_path(trained.name),
            "colour": trained.colour,
            "calibration": trained.calibration.to_dict(),
            "threshold": trained.calibration.threshold,
            "score_stats": trained.score_stats,
            "split": trained.split,
            "intensity": trained.intensity,
            "training": trained.training,
        }
    manifest = {
        "kind": KIND,
        "modality": "image",
        "classes": entries,
        "config": config.to_dict(),
        "preprocessing": {"image_size": config.image_size, "resize": "bilinear", "colour": "rgb",
                          "mean": list(UNIT[0]), "std": list(UNIT[1])},
        "metrics": metrics or {},
        "lineage": lineage or {},
    }
    return manifest, files


class ReconstructionScorer:
    """One class's graph as an image scorer: reconstruction-error map and its maximum."""

    def __init__(self, graph, image_size: int, calibration: Calibration | None = None, threads: int | None = None,
                 name: str = "autoencoder graph"):
        self.session = graph if hasattr(graph, "run") else open_session(graph, threads, name)
        self.image_size = image_size
        self.calibration = calibration
        _check_graph(self.session, image_size, name)

    def score(self, images: list[Image.Image], with_maps: bool = True) -> list[RawResult]:
        results = []
        for image in images:  # one at a time: the same arithmetic at training, evaluation and serving
            batch = to_model_input([image], self.image_size, *UNIT)
            score_map, score = self.session.run([MAP_OUTPUT, SCORE_OUTPUT], {INPUT: batch})
            results.append(RawResult(float(score[0]), score_map[0] if with_maps else None))
        return results


def _check_graph(session, image_size: int, name: str) -> None:
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if list(inputs) != [INPUT] or {MAP_OUTPUT, SCORE_OUTPUT} - outputs:
        raise BundleError(f"{name} takes {list(inputs)} and gives {sorted(outputs)}; an autoencoder graph takes "
                          f"{INPUT!r} and gives {MAP_OUTPUT!r} and {SCORE_OUTPUT!r}")
    shape = inputs[INPUT]
    if len(shape) != 4 or shape[1] != 3 or shape[2:] != [image_size, image_size]:
        raise BundleError(f"{name} takes images of shape {shape}, but the bundle's image size is {image_size}")


def load(root: Path, manifest: dict, threads: int | None = None) -> ImageModel:
    try:
        config = AutoencoderConfig.from_dict(manifest["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"the bundle's autoencoder configuration is invalid: {exc}") from None
    scorers = {}
    for name, entry in manifest["classes"].items():
        try:
            calibration = Calibration.from_dict(entry["calibration"])
        except TypeError as exc:
            raise BundleError(f"class {name!r}: its calibration is invalid: {exc}") from None
        path = bundle_file(root, manifest, entry.get("graph", graph_path(name)))
        scorers[name] = ReconstructionScorer(path, config.image_size, calibration, threads, f"class {name!r}'s graph")
    model = ImageModel(manifest, scorers, root)
    probe = Image.new("RGB", (config.image_size, config.image_size), (128, 128, 128))
    for name, scorer in scorers.items():  # warms each session up, and checks what it returns
        result = scorer.score([probe])[0]
        if result.raw_map is None or result.raw_map.shape != (config.image_size, config.image_size):
            raise BundleError(f"class {name!r}: the graph's map is not {config.image_size}×{config.image_size}")
    return model

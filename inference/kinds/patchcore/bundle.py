"""The PatchCore / SoftPatch part of a bundle: what training writes and what serving loads.

Files::

    backbone.onnx                     the feature extractor every class shares
    classes/<class>/memory_bank.npz   coreset embeddings (+ SoftPatch weights)

The manifest adds `backbone` (identity, layers, normalisation, precision), `preprocessing` and,
per class, the memory bank's file, size and patch grid. The generic bundle has already checked
every file's hash; loading here checks what only PatchCore understands (the backbone's outputs,
the embedding width and grid) before serving a single request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.bundle import bundle_file
from inference.calibration import Calibration
from inference.errors import BundleError
from inference.kinds.patchcore.config import ModelConfig, preprocessing_of
from inference.kinds.patchcore.extractor import FeatureExtractor
from inference.kinds.patchcore.memory_bank import MemoryBank
from inference.kinds.patchcore.model import ClassModel
from inference.runtime import single_threaded_blas
from inference.vision.backbone import BackboneSpec, OnnxBackbone
from inference.vision.image_model import ImageModel, RawResult
from inference.vision.preprocessing import Preprocessing

BACKBONE = "backbone.onnx"


def bank_path(class_name: str) -> str:
    return f"classes/{class_name}/memory_bank.npz"


@dataclass
class TrainedClass:
    """What training produced for one class, ready to be written into a bundle."""

    name: str
    model: ClassModel
    score_stats: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)
    #: white level of high-bit-depth images without sBIT (`inference.vision.imageio.learn_white_level`)
    intensity: dict | None = None


def contents(config: ModelConfig, backbone_path: str | Path, backbone_spec: BackboneSpec, classes: list[TrainedClass],
             metrics: dict | None = None, lineage: dict | None = None) -> tuple[dict, dict]:
    """(manifest fields, files) of a PatchCore or SoftPatch bundle, for `inference.bundle.write_bundle`."""
    files = {BACKBONE: Path(backbone_path)}
    entries = {}
    for trained in classes:
        files[bank_path(trained.name)] = _bank_bytes(trained.model.bank)
        entries[trained.name] = _class_entry(trained)
    manifest = {
        "kind": config.kind,
        "modality": "image",
        "classes": entries,
        "config": config.to_dict(),
        "preprocessing": {
            **preprocessing_of(config, backbone_spec.mean).to_dict(),
            "resize": "bilinear",
            "colour": "rgb",
            "mean": list(backbone_spec.mean),
            "std": list(backbone_spec.std),
        },
        "backbone": {**backbone_spec.to_dict(), "file": BACKBONE},
        "metrics": metrics or {},
        "lineage": lineage or {},
    }
    return manifest, files


def _bank_bytes(bank: MemoryBank) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, embeddings=bank.embeddings, weights=bank.weights)
    return buffer.getvalue()


def _class_entry(trained: TrainedClass) -> dict:
    if trained.model.calibration is None:
        raise BundleError(f"class {trained.name!r} has no calibration")
    return {
        "memory_bank": bank_path(trained.name),
        "entries": len(trained.model.bank),
        "grid": list(trained.model.grid),
        "calibration": trained.model.calibration.to_dict(),
        "threshold": trained.model.calibration.threshold,
        "score_stats": trained.score_stats,
        "split": trained.split,
        "intensity": trained.intensity,
    }


class PatchScorer:
    """One class of a PatchCore bundle as an image scorer: the shared extractor and its memory bank."""

    def __init__(self, extractor: FeatureExtractor, model: ClassModel):
        self.extractor = extractor
        self.model = model
        self.calibration = model.calibration

    def score(self, images, with_maps: bool = True) -> list[RawResult]:
        results = []
        with single_threaded_blas():
            for image in images:
                views, layout = self.extractor.views(image)
                embeddings, _ = self.extractor.embed_views(views)
                results.append(self.model.score_views(embeddings, layout, with_maps))
        return results


#: What a bundle trained before a setting was stored was made with, whatever the default is now:
#: every image resized; SoftPatch with the paper's soft weights and no image filter (later the two-fold one).
SETTINGS_OF_OLDER_BUNDLES = {"preprocessing": "resize", "soft_weights": True, "noise_images": 0.0,
                             "noise_image_rule": "two_fold"}


def load(root: Path, manifest: dict, threads: int | None = None) -> ImageModel:
    try:
        config = ModelConfig.from_dict({**SETTINGS_OF_OLDER_BUNDLES, **manifest["config"]})
        spec = BackboneSpec.from_dict(manifest["backbone"])
        preprocessing = Preprocessing.from_dict(manifest.get("preprocessing") or {"image_size": config.image_size})
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"the bundle's model configuration is invalid: {exc}") from None
    if config.kind != manifest["kind"]:
        raise BundleError(f"manifest kind {manifest['kind']!r} disagrees with its configuration ({config.kind!r})")
    if (preprocessing.mode, preprocessing.image_size) != (config.preprocessing, config.image_size):
        raise BundleError(f"the bundle's preprocessing ({preprocessing.mode}, {preprocessing.image_size} px) disagrees "
                          f"with its configuration ({config.preprocessing}, {config.image_size} px)")
    backbone = OnnxBackbone(bundle_file(root, manifest, manifest["backbone"].get("file", BACKBONE)), spec, threads)
    extractor = FeatureExtractor(backbone, config.image_size, config.patch_size, config.embedding_dim,
                                 preprocessing=preprocessing)
    probe = _probe(extractor)
    scorers = {name: PatchScorer(extractor, _load_class(Path(root), manifest, name, entry, config, probe))
               for name, entry in manifest["classes"].items()}
    return ImageModel(manifest, scorers, root)


def _probe(extractor: FeatureExtractor) -> tuple[int, tuple[int, int]]:
    """Embedding width and grid the backbone really produces (also warms the session up)."""
    size = extractor.image_size
    embeddings, grid = extractor.embed_views(np.full((1, size, size, 3), 128, np.uint8))
    return embeddings.shape[-1], tuple(grid)


def _load_class(root: Path, manifest: dict, name: str, entry: dict, config: ModelConfig, probe: tuple[int, tuple[int, int]]) -> ClassModel:
    path = bundle_file(root, manifest, entry.get("memory_bank", bank_path(name)))
    try:
        with np.load(path, allow_pickle=False) as data:
            embeddings, weights = data["embeddings"], data["weights"]
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"class {name!r}: memory bank cannot be read: {exc}") from None
    width, grid = probe
    if embeddings.ndim != 2 or embeddings.shape[1] != width:
        raise BundleError(f"class {name!r}: memory bank has shape {embeddings.shape} but the backbone gives {width}-d patches")
    if tuple(entry["grid"]) != grid:
        raise BundleError(f"class {name!r}: trained on a {tuple(entry['grid'])} patch grid, the backbone gives {grid}")
    calibration = Calibration.from_dict(entry["calibration"])
    return ClassModel(MemoryBank(embeddings, weights, config.index), config, tuple(entry["grid"]), calibration)

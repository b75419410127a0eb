"""The model bundle: SageMaker's `model.tar.gz`, written at training and validated at loading.

Layout::

    manifest.json                     schema version, kind, classes, thresholds, preprocessing,
                                      backbone identity and hash, metrics, lineage
    backbone.onnx                     the feature extractor every class shares
    classes/<class>/memory_bank.npz   coreset embeddings (+ SoftPatch weights)

Loading checks everything it can before serving a single request and names what is wrong.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from inference.vision.backbone import BackboneSpec, OnnxBackbone, file_sha256
from .calibration import Calibration
from inference.kinds.patchcore.config import MODEL_KINDS, ModelConfig
from .errors import BundleError
from inference.kinds.patchcore.extractor import FeatureExtractor
from inference.kinds.patchcore.memory_bank import MemoryBank
from inference.kinds.patchcore.model import ClassModel

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
BACKBONE = "backbone.onnx"
CLASS_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def bank_path(class_name: str) -> str:
    return f"classes/{class_name}/memory_bank.npz"


@dataclass
class TrainedClass:
    """What training produced for one class, ready to be written into a bundle."""

    name: str
    model: ClassModel
    score_stats: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)


def write_bundle(
    output: str | Path,
    config: ModelConfig,
    backbone_path: str | Path,
    backbone_spec: BackboneSpec,
    classes: list[TrainedClass],
    metrics: dict | None = None,
    lineage: dict | None = None,
) -> dict:
    """Write the bundle and return its manifest.

    `output` ending in `.tar.gz` gets the archive; any other path is a directory that receives
    the bundle's files, as SageMaker training expects in `/opt/ml/model` (it packs them itself).
    """
    output = Path(output)
    if not output.name.endswith(".tar.gz"):
        return write_bundle_dir(output, config, backbone_path, backbone_spec, classes, metrics, lineage)
    with tempfile.TemporaryDirectory() as staging:
        manifest = write_bundle_dir(Path(staging), config, backbone_path, backbone_spec, classes, metrics, lineage)
        pack_bundle(Path(staging), output)
    return manifest


def write_bundle_dir(directory: Path, config, backbone_path, backbone_spec: BackboneSpec, classes: list[TrainedClass],
                     metrics: dict | None = None, lineage: dict | None = None) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(backbone_path, directory / BACKBONE)
    class_entries = {}
    for trained in classes:
        _check_class_name(trained.name)
        class_entries[trained.name] = _write_class(directory, trained)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "ivadas_version": __version__,
        "kind": config.kind,
        "classes": class_entries,
        "config": config.to_dict(),
        "preprocessing": {
            "image_size": config.image_size,
            "resize": "bilinear",
            "colour": "rgb",
            "mean": list(backbone_spec.mean),
            "std": list(backbone_spec.std),
        },
        "backbone": {**backbone_spec.to_dict(), "file": BACKBONE, "sha256": file_sha256(directory / BACKBONE)},
        "metrics": metrics or {},
        "lineage": lineage or {},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def pack_bundle(directory: Path, output: Path) -> Path:
    """`model.tar.gz` of a bundle directory, files at the archive root (as SageMaker packs)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with tarfile.open(partial, "w:gz") as archive:
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file():
                archive.add(path, arcname=str(path.relative_to(directory)))
    partial.replace(output)
    return output


def _write_class(staging: Path, trained: TrainedClass) -> dict:
    relative = bank_path(trained.name)
    target = staging / relative
    target.parent.mkdir(parents=True)
    bank = trained.model.bank
    with open(target, "wb") as handle:
        np.savez(handle, embeddings=bank.embeddings, weights=bank.weights)
    if trained.model.calibration is None:
        raise BundleError(f"class {trained.name!r} has no calibration")
    return {
        "memory_bank": relative,
        "sha256": file_sha256(target),
        "entries": len(bank),
        "grid": list(trained.model.grid),
        "calibration": trained.model.calibration.to_dict(),
        "threshold": trained.model.calibration.threshold,
        "score_stats": trained.score_stats,
        "split": trained.split,
    }


def _check_class_name(name: str) -> None:
    if not CLASS_NAME_PATTERN.match(name):
        raise BundleError(f"class name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")


class LoadedBundle:
    """A validated bundle: its manifest, the shared feature extractor, and one model per class."""

    def __init__(self, root: Path, manifest: dict, extractor: FeatureExtractor, models: dict[str, ClassModel]):
        self.root = root
        self.manifest = manifest
        self.extractor = extractor
        self.models = models

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def classes(self) -> list[str]:
        return sorted(self.models)

    @property
    def version(self) -> str:
        return str(self.manifest.get("lineage", {}).get("version", "unversioned"))

    @property
    def config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.manifest["config"])


def extract_bundle(archive: str | Path, target: str | Path) -> Path:
    """Unpack `model.tar.gz` safely (no absolute paths, links or `..`)."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{archive} is not a readable model.tar.gz: {exc}") from None
    return target


def load_bundle(location: str | Path, workdir: str | Path | None = None, threads: int | None = None) -> LoadedBundle:
    """Load a bundle from a `model.tar.gz` or an extracted directory, validating everything."""
    location = Path(location)
    if not location.exists():
        raise BundleError(f"no model bundle at {location}")
    scratch = None
    if location.is_file():
        if workdir is None:
            scratch = tempfile.TemporaryDirectory(prefix="ivadas-bundle-")  # removed with the bundle
            workdir = scratch.name
        root = extract_bundle(location, workdir)
    else:
        root = location
    manifest = read_manifest(root)
    config = ModelConfig.from_dict(manifest["config"])
    spec = BackboneSpec.from_dict(manifest["backbone"])
    _check_backbone_file(root, manifest)
    extractor = FeatureExtractor(OnnxBackbone(root / BACKBONE, spec, threads), config.image_size, config.patch_size, config.embedding_dim)
    probe = _probe(extractor)
    models = {name: _load_class(root, name, entry, config, probe) for name, entry in manifest["classes"].items()}
    bundle = LoadedBundle(root, manifest, extractor, models)
    bundle._scratch = scratch
    return bundle


def _probe(extractor: FeatureExtractor) -> tuple[int, tuple[int, int]]:
    """Embedding width and grid the backbone really produces (also warms the session up)."""
    from PIL import Image

    size = extractor.image_size
    embeddings, grid = extractor.embed([Image.new("RGB", (size, size), (128, 128, 128))])
    return embeddings.shape[-1], tuple(grid)


def read_manifest(root: Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise BundleError(f"the bundle has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{MANIFEST} is not valid JSON: {exc}") from None
    validate_manifest(manifest)
    return manifest


def validate_manifest(manifest: dict) -> None:
    if not isinstance(manifest, dict):
        raise BundleError(f"{MANIFEST} must be a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"bundle schema version {version!r} is not supported: this IVADAS ({__version__}) reads schema "
            f"version {SCHEMA_VERSION}; retrain the model or use a matching IVADAS release"
        )
    missing = [key for key in ("kind", "classes", "config", "backbone", "preprocessing") if key not in manifest]
    if missing:
        raise BundleError(f"{MANIFEST} lacks {missing}")
    if manifest["kind"] not in MODEL_KINDS:
        raise BundleError(f"unknown model kind {manifest['kind']!r}; expected one of {MODEL_KINDS}")
    if not isinstance(manifest["classes"], dict) or not manifest["classes"]:
        raise BundleError("the bundle has no classes")
    for name in manifest["classes"]:
        _check_class_name(name)
    try:
        config = ModelConfig.from_dict(manifest["config"])
    except (TypeError, ValueError) as exc:
        raise BundleError(f"the bundle's model configuration is invalid: {exc}") from None
    if config.kind != manifest["kind"]:
        raise BundleError(f"manifest kind {manifest['kind']!r} disagrees with its configuration ({config.kind!r})")


def _check_backbone_file(root: Path, manifest: dict) -> None:
    path = root / BACKBONE
    if not path.is_file():
        raise BundleError(f"the bundle has no {BACKBONE}")
    expected = manifest["backbone"].get("sha256")
    actual = file_sha256(path)
    if actual != expected:
        raise BundleError(f"backbone hash mismatch: manifest says {expected}, {BACKBONE} is {actual}")


def _load_class(root: Path, name: str, entry: dict, config: ModelConfig, probe: tuple[int, tuple[int, int]]) -> ClassModel:
    path = root / entry.get("memory_bank", bank_path(name))
    if not path.is_file():
        raise BundleError(f"class {name!r}: memory bank file {path.relative_to(root)} is missing")
    if file_sha256(path) != entry.get("sha256"):
        raise BundleError(f"class {name!r}: memory bank hash mismatch (file changed after training)")
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


def manifest_of(archive: str | Path) -> dict:
    """Read and validate only the manifest of a `model.tar.gz` (no extraction of the rest)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            member = tar.extractfile(MANIFEST)
            data = member.read() if member else None
    except (tarfile.TarError, OSError, KeyError) as exc:
        raise BundleError(f"{archive} has no readable {MANIFEST}: {exc}") from None
    if data is None:
        raise BundleError(f"{archive} has no {MANIFEST}")
    manifest = json.load(io.BytesIO(data))
    validate_manifest(manifest)
    return manifest

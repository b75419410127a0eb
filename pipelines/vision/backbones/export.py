"""Resolve a backbone to an ONNX feature extractor, exported once and cached by content hash.

Sources, in the order `weights="auto"` tries them: the torch hub cache, then torchvision's download
address. `weights=<file>` loads a checkpoint; `weights="random"` is explicit and loud, and
`weights="auto-or-random"` (the demo's choice) falls back to random weights with a warning. A custom
ONNX extractor (`name=<path>.onnx`) is used as is, with its own layer names and normalisation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from inference.bundle import file_sha256
from inference.vision.backbone import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec
from pipelines.vision.backbones.catalogue import TORCHVISION_WEIGHTS, torch_hub_dir

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when the exported graph changes for the same weights
OPSET = 17
DOWNLOAD_TIMEOUT_S = 30


class BackboneUnavailable(RuntimeError):
    """No weights could be had for a pretrained backbone, and random weights were not asked for."""


@dataclass(frozen=True)
class BackboneSource:
    """What the user asked for: a built-in name or an ONNX path, weights, and (custom) layers."""

    name: str = "wide_resnet50_2"
    weights: str = "auto"  # "auto" | "auto-or-random" | "random" | path to a torchvision-format checkpoint
    layers: tuple[str, ...] = ("layer2", "layer3")
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    seed: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def is_custom_onnx(self) -> bool:
        return self.name.endswith(".onnx")


def cache_dir() -> Path:
    root = os.environ.get("IVADAS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ivadas"
    return Path(root) / "backbones"


def resolve_backbone(source: BackboneSource) -> tuple[Path, BackboneSpec]:
    """Path of an ONNX feature extractor for `source` and its identity for the bundle."""
    if source.is_custom_onnx:
        return _custom_onnx(source)
    if source.name not in TORCHVISION_WEIGHTS:
        raise ValueError(f"unknown backbone {source.name!r}; use one of {sorted(TORCHVISION_WEIGHTS)} or a path to an .onnx file")
    checkpoint, weights_label = _find_weights(source, TORCHVISION_WEIGHTS[source.name])
    weights_id = file_sha256(checkpoint) if checkpoint else f"random-{source.seed}"
    key = _cache_key(source, weights_id)
    target = cache_dir() / f"{source.name}-{key[:16]}.onnx"
    if not target.is_file():
        _export(source, checkpoint, target)
    spec = BackboneSpec(source.name, source.layers, IMAGENET_MEAN, IMAGENET_STD, weights_label)
    return target, spec


def _custom_onnx(source: BackboneSource) -> tuple[Path, BackboneSpec]:
    path = Path(source.name)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX feature extractor at {path}")
    spec = BackboneSpec(path.stem, source.layers, tuple(source.mean), tuple(source.std), f"file:{file_sha256(path)[:16]}")
    return path, spec


def _cache_key(source: BackboneSource, weights_id: str) -> str:
    identity = {"name": source.name, "weights": weights_id, "layers": list(source.layers), "opset": OPSET, "format": EXPORT_FORMAT}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _find_weights(source: BackboneSource, url: str) -> tuple[Path | None, str]:
    """(checkpoint path or None for random, label recorded in the manifest)."""
    if source.weights == "auto-or-random":
        try:
            return _find_weights(BackboneSource(source.name, "auto", source.layers, seed=source.seed), url)
        except BackboneUnavailable as exc:
            log.warning("%s", exc)
            return _find_weights(BackboneSource(source.name, "random", source.layers, seed=source.seed), url)
    if source.weights == "random":
        log.warning("using RANDOM weights for %s: anomaly detection on real images will be near chance", source.name)
        return None, f"random(seed={source.seed})"
    if source.weights != "auto":
        path = Path(source.weights)
        if not path.is_file():
            raise BackboneUnavailable(f"weights file {path} does not exist")
        return path, f"file:{file_sha256(path)[:16]}"
    cached = hub_checkpoint_path(url)
    if cached.is_file():
        return cached, "imagenet"
    try:
        return _download(url, cached), "imagenet"
    except Exception as exc:  # any network failure means the same thing to the user
        raise BackboneUnavailable(
            f"ImageNet weights for {source.name} are not in the torch hub cache ({cached}) and could not be "
            f"downloaded from {url} ({type(exc).__name__}: {exc}). Download that file to {cached}, pass "
            f"--weights PATH, or pass --weights random (tests and demos only: quality on real images is near chance)."
        ) from None


def hub_checkpoint_path(url: str) -> Path:
    return torch_hub_dir() / "checkpoints" / url.rsplit("/", 1)[-1]


def _download(url: str, target: Path) -> Path:
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(url, str(target), progress=True)
    finally:
        socket.setdefaulttimeout(previous)
    return target


def _state_dict(checkpoint: Path) -> dict:
    """The tensors of a torchvision-format checkpoint (optionally under "state_dict"), or a clear refusal."""
    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any file torch cannot read back (a text file raises KeyError)
        reason = "" if isinstance(exc, KeyError) else f" ({(str(exc).splitlines() or [''])[0][:120]})"
        raise ValueError(f"weights file {checkpoint} is not a PyTorch checkpoint{reason}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {checkpoint} holds no state dict of tensors (a torchvision checkpoint)")
    return state


def _export(source: BackboneSource, checkpoint: Path | None, target: Path) -> None:
    import torch

    from pipelines.vision.backbones import resnet

    model = resnet.build(source.name, source.layers)
    if checkpoint is None:
        resnet.random_init(model, source.seed)
    else:
        model.load_torchvision_state_dict(_state_dict(checkpoint))
    target.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, 224, 224)
    axes = {"image": {0: "batch", 2: "height", 3: "width"}}
    axes.update({layer: {0: "batch", 2: f"{layer}_h", 3: f"{layer}_w"} for layer in source.layers})
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp, warnings.catch_warnings():
        # the TorchScript exporter is chosen on purpose: one self-contained opset-17 file
        warnings.simplefilter("ignore", DeprecationWarning)
        staging = Path(tmp) / target.name
        torch.onnx.export(
            model, (dummy,), str(staging), input_names=["image"], output_names=list(source.layers),
            dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )
        shutil.move(staging, target)  # atomic within the cache folder: no half-written graphs
    log.info("exported %s to %s", source.name, target)

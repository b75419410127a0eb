"""INT8 static quantization of the ONNX backbone, calibrated on training images.

The recipe (`DEFAULT_RECIPE`) is chosen so that the features do not depend on the CPU the bundle
is served on. QDQ format, U8 activations, S8 per-channel weights restricted to ±64 (7 bits,
ONNX Runtime's `reduce_range`):

- On x86 CPUs without VNNI (AVX2, AVX-512 before Cascade Lake; SSE4.1), ONNX Runtime multiplies U8
  activations by S8 weights with `vpmaddubsw`, which adds each pair of products into a *saturating*
  int16. With full-range weights a pair reaches 2 · 255 · 127 = 64770 and clips at 32767; VNNI CPUs
  (`vpdpbusd`) and ARM (widening multiplies) accumulate exactly. A bundle calibrated on one
  instance type then gives other features on another. With |w| ≤ 64 a pair stays within
  2 · 255 · 64 = 32640: every CPU adds exactly, and features agree up to float rounding, as FP32's do.
- S8 activations do not help: on x86 ONNX Runtime shifts them to U8 and runs the same kernel.
  U8 weights (U8U8) are also exact everywhere, but x86 has no fast kernel for them: 2.3 times slower
  than U8S8 on an AVX-512 VNNI CPU. Measured by `ivadas bench --suite int8` (pipelines/BENCHMARKS.md):
  feature error against FP32 7.7 % on every CPU for this recipe; 6.0 % with VNNI and 16.5 % without
  for full-range weights.

Activation ranges come from the 99.999th percentile of calibration values, not their min/max:
measured on real solar-cell images, min/max calibration cost 1.2 points of image AUROC against
FP32, percentile 0.25. BatchNormalization nodes that could not be folded into a convolution
(pre-activation ResNets have one per block) stay in FP32: ONNX Runtime has no INT8 kernel for them,
and their scale vector, a rank-1 weight, would be quantized per tensor. The result is cached in
the backbone cache (`$IVADAS_CACHE/backbones/int8/`), keyed by the graph, the images and the recipe.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from inference.bundle import file_sha256
from inference.vision.backbone import BackboneSpec
from inference.vision.imageio import to_model_input
from inference.vision.preprocessing import Preprocessing, normalise


@dataclass(frozen=True)
class Recipe:
    name: str
    activations: str  # "u8" or "s8"
    weights: str  # "s8" or "u8"
    seven_bit_weights: bool  # ONNX Runtime's reduce_range: weights in [-64, 64]
    summary: str


RECIPES = {
    recipe.name: recipe
    for recipe in (
        Recipe("u8s8-w7", "u8", "s8", True, "U8 activations, S8 weights within ±64: exact on every CPU"),
        Recipe("u8s8", "u8", "s8", False, "U8 activations, full-range S8 weights: saturates on x86 without VNNI"),
        Recipe("u8u8", "u8", "u8", False, "U8 activations and weights: exact on every CPU, slow on x86"),
    )
}
#: The recipe `--int8` uses (see the module docstring for why).
DEFAULT_RECIPE = "u8s8-w7"


def _unfolded_batch_norms(model_path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type == "BatchNormalization"]


class _Batches:
    """onnxruntime's CalibrationDataReader protocol over preprocessed images."""

    def __init__(self, input_name: str, batch: np.ndarray):
        self._items = iter([{input_name: batch[i : i + 1]} for i in range(len(batch))])

    def get_next(self):
        return next(self._items, None)


def _cache_folder() -> Path:
    from pipelines.vision.backbones.export import cache_dir

    folder = cache_dir() / "int8"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


#: Most views the activation ranges are calibrated on: a tiled image gives many, and a few tiles of
#: every image cover the range of what the backbone sees as well as all of them.
MAX_CALIBRATION_VIEWS = 64


def calibration_views(images: list, preprocessing: Preprocessing) -> np.ndarray:
    """uint8 views of `images` for INT8 calibration: every view of every image, or, when that is more
    than `MAX_CALIBRATION_VIEWS`, the same number of evenly spread views of each."""
    per_image = max(1, -(-MAX_CALIBRATION_VIEWS // len(images)))
    chosen = []
    for image in images:
        views = preprocessing.views(image)[0]
        if len(views) > per_image:
            views = views[np.linspace(0, len(views) - 1, per_image).round().astype(int)]
        chosen.append(views)
    return np.concatenate(chosen)


def quantize_backbone(onnx_path: Path, spec: BackboneSpec, images: list, image_size: int,
                      method: str = "percentile", recipe: str = DEFAULT_RECIPE,
                      preprocessing: Preprocessing | None = None) -> tuple[Path, BackboneSpec]:
    """An INT8 copy of the backbone at `onnx_path` (cached), and its spec. Its activation ranges are
    calibrated on the views `preprocessing` cuts from `images` (default: resized to `image_size`)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    import onnxruntime as ort

    if not images:
        raise ValueError("INT8 calibration needs at least one training image")
    if recipe not in RECIPES:
        raise ValueError(f"unknown INT8 recipe {recipe!r}; one of {sorted(RECIPES)}")
    chosen = RECIPES[recipe]
    if preprocessing is None:
        batch = to_model_input(images, image_size, spec.mean, spec.std)
    else:
        batch = normalise(calibration_views(images, preprocessing), spec.mean, spec.std)
    identity = f"qdq:{recipe}:{method}:bn-fp32".encode()
    key = hashlib.sha256(file_sha256(onnx_path).encode() + identity + batch.tobytes()).hexdigest()[:16]
    folder = _cache_folder()
    target = folder / f"{Path(onnx_path).stem}-int8-{recipe}-{key}.onnx"
    if not target.is_file():
        types = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
        input_name = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
            staging = Path(tmp) / target.name
            quantize_static(
                str(prepared), str(staging), _Batches(input_name, batch),
                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=chosen.seven_bit_weights,
                activation_type=types[chosen.activations], weight_type=types[chosen.weights],
                calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                                  "entropy": CalibrationMethod.Entropy}[method],
                nodes_to_exclude=_unfolded_batch_norms(prepared),
            )
            staging.replace(target)
    return target, replace(spec, precision="int8", quantization=f"qdq-{recipe}-{method}")

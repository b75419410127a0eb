"""INT8 static quantization of the ONNX backbone, calibrated on training images.

U8 activations with S8 per-channel weights in QDQ format: what ONNX Runtime's x86 kernels (AVX-512
VNNI) run fastest. Activation ranges come from the 99.999th percentile of calibration values, not
their min/max: measured on real solar-cell images, min/max calibration cost 1.2 points of image
AUROC against FP32, percentile 0.25. BatchNormalization nodes that could not be folded into a
convolution (pre-activation ResNets have one per block) stay in FP32: ONNX Runtime has no INT8
kernel for them, and their scale vector, a rank-1 weight, would be quantized per tensor. The result
is cached next to the FP32 graph, keyed by the graph, the images and this recipe.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from inference.bundle import file_sha256
from inference.vision.backbone import BackboneSpec
from inference.vision.imageio import to_model_input


RECIPE = "qdq-u8s8-per-channel-bn-fp32"  # part of the cache key: a new recipe re-quantizes


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


def quantize_backbone(onnx_path: Path, spec: BackboneSpec, images: list, image_size: int,
                      method: str = "percentile") -> tuple[Path, BackboneSpec]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    import onnxruntime as ort

    if not images:
        raise ValueError("INT8 calibration needs at least one training image")
    batch = to_model_input(images, image_size, spec.mean, spec.std)
    recipe = f"{RECIPE}:{method}".encode()
    key = hashlib.sha256(file_sha256(onnx_path).encode() + recipe + batch.tobytes()).hexdigest()[:16]
    target = Path(onnx_path).with_name(f"{Path(onnx_path).stem}-int8-{key}.onnx")
    if not target.is_file():
        input_name = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
            staging = Path(tmp) / target.name
            quantize_static(
                str(prepared), str(staging), _Batches(input_name, batch),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                                  "entropy": CalibrationMethod.Entropy}[method],
                nodes_to_exclude=_unfolded_batch_norms(prepared),
            )
            staging.replace(target)
    return target, replace(spec, precision="int8")

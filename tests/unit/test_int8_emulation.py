"""The rewrite that reproduces INT8 convolutions as x86 CPUs without VNNI compute them."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipelines.vision.int8_emulation import emulate

IN_CHANNELS, OUT_CHANNELS, SIDE = 4, 3, 6
X_SCALE, X_ZERO = 0.02, 10


def _weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    w_q = rng.integers(-127, 128, (OUT_CHANNELS, IN_CHANNELS, 3, 3)).astype(np.int8)
    w_q[0] = 127  # channel 0: every pair of products of bright pixels passes int16
    w_q[1, :, :, :] = np.where(rng.random((IN_CHANNELS, 3, 3)) < 0.5, 64, -64)  # within ±64: never saturates
    return w_q, np.array([0.01, 0.02, 0.005], np.float32)


def _qdq_conv(path, w_q, w_scale, bias):
    """x → QuantizeLinear (u8) → DequantizeLinear → Conv(3×3, pads 1, DequantizeLinear(s8 per channel)) + bias."""
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd", "b"], ["y"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
    ]
    initializers = [
        numpy_helper.from_array(np.array(X_SCALE, np.float32), "xs"),
        numpy_helper.from_array(np.array(X_ZERO, np.uint8), "xz"),
        numpy_helper.from_array(w_q, "wq"),
        numpy_helper.from_array(w_scale, "ws"),
        numpy_helper.from_array(np.zeros(OUT_CHANNELS, np.int8), "wz"),
        numpy_helper.from_array(bias, "b"),
    ]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, IN_CHANNELS, SIDE, SIDE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, OUT_CHANNELS, SIDE, SIDE])], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _by_hand(x: np.ndarray, w_q, w_scale, bias, saturate: bool) -> np.ndarray:
    """The kernel's arithmetic on raw u8 values: pairs along (row, column, channel), int16 when saturating."""
    x_q = np.clip(np.rint(x / X_SCALE) + X_ZERO, 0, 255).astype(np.int64)[0]
    padded = np.pad(x_q, ((0, 0), (1, 1), (1, 1)), constant_values=X_ZERO)
    out = np.zeros((OUT_CHANNELS, SIDE, SIDE))
    for o in range(OUT_CHANNELS):
        weights = w_q[o].astype(np.int64).transpose(1, 2, 0).reshape(-1)  # (row, column, channel)
        for r in range(SIDE):
            for c in range(SIDE):
                values = padded[:, r : r + 3, c : c + 3].transpose(1, 2, 0).reshape(-1)
                pairs = (values * weights).reshape(-1, 2).sum(axis=1)
                if saturate:
                    pairs = np.clip(pairs, -32768, 32767)
                total = pairs.sum() - X_ZERO * weights.sum()
                out[o, r, c] = total * X_SCALE * w_scale[o] + bias[o]
    return out[None]


@pytest.mark.parametrize("saturate", [False, True])
def test_rewrite_computes_the_kernels_integer_arithmetic(tmp_path, saturate):
    w_q, w_scale = _weights()
    bias = np.array([0.5, -0.25, 0.0], np.float32)
    _qdq_conv(tmp_path / "qdq.onnx", w_q, w_scale, bias)
    assert emulate(tmp_path / "qdq.onnx", tmp_path / "emulated.onnx", saturate=saturate) == 1
    x = np.random.default_rng(2).uniform(0, 5.0, (1, IN_CHANNELS, SIDE, SIDE)).astype(np.float32)  # mostly u8 255
    session = ort.InferenceSession(str(tmp_path / "emulated.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["y"], {"x": x})[0]
    expected = _by_hand(x, w_q, w_scale, bias, saturate)
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-4)
    exact = _by_hand(x, w_q, w_scale, bias, False)
    saturated = _by_hand(x, w_q, w_scale, bias, True)
    assert not np.allclose(saturated[0, 0], exact[0, 0])  # full-range weights clip...
    assert np.array_equal(saturated[0, 1], exact[0, 1])  # ...weights within ±64 never do


def test_convolutions_it_does_not_model_are_left_alone(tmp_path):
    w_q, w_scale = _weights()
    _qdq_conv(tmp_path / "qdq.onnx", w_q, w_scale, np.zeros(OUT_CHANNELS, np.float32))
    model = onnx.load(str(tmp_path / "qdq.onnx"))
    for initializer in model.graph.initializer:
        if initializer.name == "wz":  # asymmetric weights run another kernel
            initializer.CopyFrom(numpy_helper.from_array(np.array([0, 3, 0], np.int8), "wz"))
    onnx.save(model, str(tmp_path / "asymmetric.onnx"))
    assert emulate(tmp_path / "asymmetric.onnx", tmp_path / "out.onnx") == 0

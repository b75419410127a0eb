"""What an INT8 backbone computes on an x86 CPU without VNNI, reproduced on any CPU.

ONNX Runtime's x86 kernels multiply U8 activations by S8 weights with `vpmaddubsw` on CPUs without
VNNI (AVX2, AVX-512 before Cascade Lake): each pair of neighbouring products along the reduction
is added into an int16 that saturates at ±32767, then the pairs are summed in int32. CPUs with
VNNI (`vpdpbusd`) and ARM accumulate every product exactly in int32. ONNX Runtime offers no
switch to choose the kernel, so the benchmark rewrites the graph instead: every QDQ convolution
becomes explicit integer arithmetic in float32 (exact: products and pair sums are integers below
2^24) with the pair sums clipped to int16, or not clipped for the exact accumulation.

Model of the kernel: the reduction runs over (kernel row, kernel column, input channel), input
channels innermost, as ONNX Runtime's channels-last convolution lays it out; pairs are
neighbours in that order, the last one padded with a zero. With input channels a multiple of
four (every convolution of a ResNet but the first) the pairs never cross a kernel position, so the
model does not depend on how the kernel tiles the reduction. Used only by the benchmark, to
measure the features a bundle would give on such a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

INT16_MAX = 32767


def emulate(model_path: str | Path, output_path: str | Path, saturate: bool = True) -> int:
    """Write `model_path` with every U8×S8 QDQ convolution as explicit pairwise integer arithmetic
    (`saturate`: int16 pair sums as without VNNI; else exact). Returns how many were rewritten."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    produced_by = {output: node for node in graph.node for output in node.output}
    new_nodes, new_initializers, rewritten = [], [], 0

    def constant(name: str, value) -> str:
        new_initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    for node in graph.node:
        parts = _qdq_conv(node, produced_by, initializers) if node.op_type == "Conv" else None
        if parts is None:
            new_nodes.append(node)
            continue
        rewritten += 1
        x_q, x_scale, x_zero, w_q, w_scale, bias, attributes = parts
        out_channels, in_channels, kernel_h, kernel_w = w_q.shape
        reduction = in_channels * kernel_h * kernel_w
        padded = reduction + reduction % 2
        pairs = padded // 2
        tag = f"{node.name or node.output[0]}_int8emu"
        # one-hot im2col: row k of the reduction is (kernel row, kernel column, input channel), channel innermost
        gather = np.zeros((padded, in_channels, kernel_h, kernel_w), np.float32)
        weights_by_row = np.zeros((out_channels, padded), np.float32)
        row = 0
        for i in range(kernel_h):
            for j in range(kernel_w):
                for c in range(in_channels):
                    gather[row, c, i, j] = 1.0
                    weights_by_row[:, row] = w_q[:, c, i, j]
                    row += 1
        zero_rows = np.zeros((1, padded, 1, 1), np.float32)
        zero_rows[0, :reduction] = x_zero
        # grouped 1×1 convolution: group g holds rows 2g and 2g+1, output channel g·O + o
        pair_weights = np.zeros((pairs * out_channels, 2, 1, 1), np.float32)
        for g in range(pairs):
            pair_weights[g * out_channels : (g + 1) * out_channels, :, 0, 0] = weights_by_row[:, 2 * g : 2 * g + 2]
        column_sums = weights_by_row.sum(axis=1).reshape(1, out_channels, 1, 1)
        scale = (x_scale * w_scale).reshape(1, out_channels, 1, 1).astype(np.float32)
        offset = (bias.reshape(1, out_channels, 1, 1) - scale * x_zero * column_sums).astype(np.float32)

        names = {k: f"{tag}_{k}" for k in ("xf", "xc", "cols", "raw", "pairs", "clipped", "shape", "grid", "flat",
                                           "sum", "out_shape", "acc", "scaled")}
        new_nodes += [
            helper.make_node("Cast", [x_q], [names["xf"]], to=TensorProto.FLOAT),
            helper.make_node("Sub", [names["xf"], constant(f"{tag}_zx", np.float32(x_zero))], [names["xc"]]),
            # padding of the centred input is 0, i.e. the zero point once shifted back: as the kernel pads
            helper.make_node("Conv", [names["xc"], constant(f"{tag}_gather", gather)], [names["cols"]], **attributes),
            helper.make_node("Add", [names["cols"], constant(f"{tag}_zrows", zero_rows)], [names["raw"]]),
            helper.make_node("Conv", [names["raw"], constant(f"{tag}_pw", pair_weights)], [names["pairs"]], group=pairs),
        ]
        summed_input = names["pairs"]
        if saturate:
            new_nodes.append(helper.make_node("Clip", [names["pairs"], constant(f"{tag}_lo", np.float32(-INT16_MAX - 1)),
                                                       constant(f"{tag}_hi", np.float32(INT16_MAX))], [names["clipped"]]))
            summed_input = names["clipped"]
        new_nodes += [
            helper.make_node("Shape", [names["raw"]], [names["shape"]]),
            helper.make_node("Slice", [names["shape"], constant(f"{tag}_s0", np.array([2], np.int64)),
                                       constant(f"{tag}_s1", np.array([4], np.int64))], [names["grid"]]),
            helper.make_node("Reshape", [summed_input, constant(f"{tag}_r", np.array([0, pairs, out_channels, -1], np.int64))],
                             [names["flat"]]),
            helper.make_node("ReduceSum", [names["flat"], constant(f"{tag}_axis", np.array([1], np.int64))], [names["sum"]],
                             keepdims=0),
            helper.make_node("Concat", [constant(f"{tag}_head", np.array([0, out_channels], np.int64)), names["grid"]],
                             [names["out_shape"]], axis=0),
            helper.make_node("Reshape", [names["sum"], names["out_shape"]], [names["acc"]]),
            helper.make_node("Mul", [names["acc"], constant(f"{tag}_scale", scale)], [names["scaled"]]),
            helper.make_node("Add", [names["scaled"], constant(f"{tag}_offset", offset)], [node.output[0]]),
        ]
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_initializers)
    onnx.save(model, str(output_path))
    return rewritten


def _qdq_conv(node, produced_by: dict, initializers: dict):
    """(u8 input name, input scale, input zero point, s8 weights, per-channel weight scales, float
    bias, Conv attributes) of a QDQ convolution with U8 activations and S8 symmetric weights, or None."""
    from onnx import helper

    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attributes.get("group", 1) != 1 or attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    x_dq = produced_by.get(node.input[0])
    w_dq = produced_by.get(node.input[1])
    if x_dq is None or w_dq is None or x_dq.op_type != "DequantizeLinear" or w_dq.op_type != "DequantizeLinear":
        return None
    w_q = initializers.get(w_dq.input[0])
    x_scale, x_zero = initializers.get(x_dq.input[1]), initializers.get(x_dq.input[2]) if len(x_dq.input) > 2 else None
    if w_q is None or w_q.dtype != np.int8 or x_scale is None or x_zero is None or x_zero.dtype != np.uint8:
        return None
    if len(w_dq.input) > 2 and np.any(initializers.get(w_dq.input[2], 0) != 0):
        return None  # asymmetric weights take another kernel
    w_scale = np.broadcast_to(initializers[w_dq.input[1]].astype(np.float64), (w_q.shape[0],))
    bias = np.zeros(w_q.shape[0])
    if len(node.input) > 2 and node.input[2]:
        bias_node = produced_by.get(node.input[2])
        if bias_node is not None and bias_node.op_type == "DequantizeLinear":
            b_q, b_scale = initializers[bias_node.input[0]], initializers[bias_node.input[1]]
            bias = b_q.astype(np.float64) * b_scale.astype(np.float64)
        elif node.input[2] in initializers:
            bias = initializers[node.input[2]].astype(np.float64)
        else:
            return None
    attributes = {k: v for k, v in attributes.items() if k in ("pads", "strides", "dilations", "kernel_shape")}
    return (x_dq.input[0], float(x_scale), float(x_zero), w_q.astype(np.int32), w_scale, bias, attributes)

"""ONNX graphs for the detector tests: hand-made ones whose output is known, and a small YOLO-shaped
network in torch (random weights) exported as Ultralytics exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NAMES = ["crack", "normal", "hot spot"]


def constant_graph(path: Path, rows, input_shape=(1, 3, 640, 640), output_rank: int = 3, metadata: dict | None = None,
                   outputs: int = 1) -> Path:
    """A graph whose output is `rows` ([4 + classes, anchors]) for any image: the image enters the
    output only multiplied by zero, so the graph does use its input, as a detector would."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rows = np.asarray(rows, dtype=np.float32)
    value = rows[None] if output_rank == 3 else rows
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=list(range(1, len(input_shape))), keepdims=1),
        helper.make_node("Reshape", ["mean", "shape"], ["flat"]),
        helper.make_node("Mul", ["flat", "zero"], ["nothing"]),
        helper.make_node("Add", ["boxes", "nothing"], ["output0"]),
    ]
    initialisers = [
        numpy_helper.from_array(value, "boxes"),
        numpy_helper.from_array(np.ones(output_rank, dtype=np.int64), "shape"),
        numpy_helper.from_array(np.zeros(1, dtype=np.float32), "zero"),
    ]
    graph_outputs = [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(value.shape))]
    for index in range(1, outputs):  # a second head, as segmentation exports have
        nodes.append(helper.make_node("Identity", ["mean"], [f"output{index}"]))
        graph_outputs.append(helper.make_tensor_value_info(f"output{index}", TensorProto.FLOAT, [1] * len(input_shape)))
    graph = helper.make_graph(nodes, "known_boxes", [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))],
                              graph_outputs, initialisers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="ivadas-tests")
    model.ir_version = 8
    for key, text in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, text
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def anchors(*rows) -> np.ndarray:
    """[4 + classes, anchors] from rows of (cx, cy, w, h, score per class)."""
    return np.array(rows, dtype=np.float32).T


def ultralytics_metadata(names) -> dict:
    return {"names": repr(dict(enumerate(names))), "task": "detect", "stride": "32", "imgsz": "[640, 640]"}


def tiny_yolo(class_count: int, seed: int = 0):
    """A YOLOv8-shaped detector: three heads at strides 8, 16 and 32 (8,400 anchors at 640 px), each
    anchor a box (centre, size in input pixels) and one sigmoid score per class."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.SiLU())

    class TinyYolo(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(block(3, 8), block(8, 16), block(16, 16))
            self.down4, self.down5 = block(16, 32), block(32, 32)
            self.heads = nn.ModuleList(nn.Conv2d(c, 4 + class_count, 1) for c in (16, 32, 32))

        def forward(self, images):
            p3 = self.stem(images)
            p4 = self.down4(p3)
            p5 = self.down5(p4)
            levels = []
            for features, head, stride in zip((p3, p4, p5), self.heads, (8, 16, 32)):
                out = head(features)
                height, width = out.shape[2], out.shape[3]
                gy, gx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                                        indexing="ij")
                cx = (gx + 0.5 + torch.tanh(out[:, 0])) * stride
                cy = (gy + 0.5 + torch.tanh(out[:, 1])) * stride
                w = torch.exp(out[:, 2].clamp(-3, 3)) * stride * 2
                h = torch.exp(out[:, 3].clamp(-3, 3)) * stride * 2
                scores = torch.sigmoid(out[:, 4:] * 3)
                levels.append(torch.cat([torch.stack([cx, cy, w, h], 1), scores], 1).flatten(2))
            return torch.cat(levels, 2)

    return TinyYolo().eval()


def export_tiny_yolo(path: Path, class_count: int, seed: int = 0, metadata: dict | None = None):
    """The torch model and its ONNX export (opset 17, TorchScript exporter, static 640×640 input)."""
    import warnings

    import onnx
    import torch

    model = tiny_yolo(class_count, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 640, 640),), str(path), input_names=["images"], output_names=["output0"],
                          opset_version=17, dynamo=False)
    if metadata:
        graph = onnx.load(path)
        for key, text in metadata.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, text
        onnx.save(graph, path)
    return model

"""An Ultralytics-format ONNX detector (YOLOv8 / YOLO11) run with ONNX Runtime and numpy only.

The graph takes one letterboxed RGB image `[1, 3, H, W]` scaled to [0, 1] and returns
`[1, 4 + classes, anchors]`: per anchor the box centre, width and height in input pixels and one
score per class (already passed through a sigmoid). Decoding follows Ultralytics' own
post-processing: each anchor keeps its best class, anchors below the confidence cut are dropped,
non-maximum suppression runs per class (a box is suppressed by a better one of the same class
whose IoU with it exceeds the IoU threshold), and the boxes are mapped back to the original image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from inference.errors import IvadasError
from inference.runtime import open_session

DEFAULT_INPUT_SIZE = 640  # what Ultralytics exports at unless told otherwise; used for dynamic inputs
LETTERBOX_FILL = 114  # grey of Ultralytics' letterbox padding
IOU_THRESHOLD = 0.7  # Ultralytics' default for prediction and validation
MAX_DETECTIONS = 300
MAX_CANDIDATES = 30_000  # boxes that enter NMS at most, the best first (as Ultralytics)
#: The floor the evaluation detects at to rank detections for mAP (as Ultralytics' validation)
EVALUATION_CONFIDENCE = 0.001
LAYOUT = "[1, 4 + classes, anchors]"


class DetectorError(IvadasError):
    """An ONNX file, names file or labelled set that cannot be used as a detector, with the reason."""

    status, code = 400, "invalid_detector"


@dataclass(frozen=True)
class GraphLayout:
    input_name: str
    output_name: str
    input_size: tuple[int, int]  # (height, width)
    input_type: str  # "float32" or "float16"
    class_count: int
    anchors: int


def inspect_graph(session, input_size: tuple[int, int] | None = None) -> GraphLayout:
    """Check that a session is a YOLO detector and read its layout (one probe run on a grey image).

    `input_size` is used when the graph's input size is dynamic (default 640×640); a graph with a
    fixed size keeps its own.
    """
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise DetectorError(f"the graph has {len(inputs)} inputs; a YOLO detector has one, the image [1, 3, H, W]")
    image_input = inputs[0]
    shape = list(image_input.shape)
    if len(shape) != 4 or shape[1] != 3:
        raise DetectorError(f"the graph's input {image_input.name!r} has shape {_shape(shape)}; a YOLO detector takes "
                            "one RGB image, [1, 3, H, W]")
    if image_input.type not in ("tensor(float)", "tensor(float16)"):
        raise DetectorError(f"the graph's input is {image_input.type}; a YOLO detector takes float pixels in [0, 1]")
    fixed = [d if isinstance(d, int) and d > 0 else None for d in shape[2:]]
    default = input_size or (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)
    size = (fixed[0] or default[0], fixed[1] or default[1])
    if min(size) < 32 or max(size) > 4096:
        raise DetectorError(f"the graph's input is {size[1]}×{size[0]} pixels; a detector's input is 32 to 4096 pixels a side")
    if len(outputs) != 1:
        raise DetectorError(f"the graph has {len(outputs)} outputs ({', '.join(o.name for o in outputs)}); a YOLOv8/11 "
                            f"detector has one, {LAYOUT} (segmentation and NMS-included exports are not detectors here)")
    output = outputs[0]
    if len(output.shape) != 3:
        raise DetectorError(f"the graph is not a YOLO detector: its output {output.name!r} has rank {len(output.shape)} "
                            f"({_shape(output.shape)}); a YOLOv8/11 detector's output is {LAYOUT}")
    dtype = np.float16 if image_input.type == "tensor(float16)" else np.float32
    probe = np.full((1, 3, *size), LETTERBOX_FILL / 255.0, dtype=dtype)
    try:
        produced = session.run([output.name], {image_input.name: probe})[0]
    except Exception as exc:  # onnxruntime raises its own types
        raise DetectorError(f"the graph cannot run on a {size[1]}×{size[0]} image: {exc}") from None
    if produced.ndim != 3 or produced.shape[0] != 1 or produced.shape[1] <= 4:
        raise DetectorError(f"the graph is not a YOLO detector: on one image it returns {list(produced.shape)}; a YOLOv8/11 "
                            f"detector returns {LAYOUT}")
    return GraphLayout(image_input.name, output.name, (int(size[0]), int(size[1])), np.dtype(dtype).name,
                       int(produced.shape[1] - 4), int(produced.shape[2]))


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else (d or "?") for d in shape) + "]"


# ------------------------------------------------------------------------------ letterbox


def resize_linear(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of `[H, W, C]` uint8 pixels as OpenCV's INTER_LINEAR (what Ultralytics' letterbox
    uses): half-pixel centres, no anti-aliasing, edges replicated; rounded to uint8."""
    source_h, source_w = pixels.shape[:2]
    if (source_w, source_h) == (width, height):
        return pixels

    def axis(target: int, source: int):
        position = (np.arange(target, dtype=np.float64) + 0.5) * (source / target) - 0.5
        position = np.clip(position, 0, source - 1)
        low = np.floor(position).astype(np.intp)
        high = np.minimum(low + 1, source - 1)
        return low, high, (position - low).astype(np.float32)

    y0, y1, fy = axis(height, source_h)
    x0, x1, fx = axis(width, source_w)
    data = pixels.astype(np.float32)
    top = data[y0][:, x0] * (1 - fx)[None, :, None] + data[y0][:, x1] * fx[None, :, None]
    bottom = data[y1][:, x0] * (1 - fx)[None, :, None] + data[y1][:, x1] * fx[None, :, None]
    rows = top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]
    return np.clip(np.rint(rows), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed in the model's input: scale and the padding's left and top."""

    gain: float
    left: int
    top: int
    original: tuple[int, int]  # (width, height)

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """`[n, 4]` x0, y0, x1, y1 in input pixels → original image pixels, clipped to the image."""
        mapped = (boxes - np.array([self.left, self.top, self.left, self.top], dtype=np.float64)) / self.gain
        width, height = self.original
        mapped[:, [0, 2]] = mapped[:, [0, 2]].clip(0, width)
        mapped[:, [1, 3]] = mapped[:, [1, 3]].clip(0, height)
        return mapped


def letterbox(image: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Ultralytics' letterbox: scale to fit `size` (height, width) keeping the aspect ratio, centre,
    pad with grey 114. Returns float `[1, 3, H, W]` in [0, 1] and the placement."""
    height, width = size
    source_w, source_h = image.size
    gain = min(height / source_h, width / source_w)
    new_w, new_h = int(round(source_w * gain)), int(round(source_h * gain))
    left, top = int(round((width - new_w) / 2 - 0.1)), int(round((height - new_h) / 2 - 0.1))
    canvas = np.full((height, width, 3), LETTERBOX_FILL, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resize_linear(np.asarray(image.convert("RGB")), new_w, new_h)
    tensor = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    return tensor, Letterbox(gain, left, top, (source_w, source_h))


# ----------------------------------------------------------------------------- decoding


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, classes: np.ndarray | None = None,
        limit: int | None = None) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, best first: a box is dropped when its IoU with a kept,
    better-scoring box (of the same class, when `classes` are given) exceeds `iou_threshold`, as
    torchvision's `nms` and `batched_nms`. Ties keep the earlier box. Stops after `limit` boxes:
    the same boxes as suppressing everything and keeping the best `limit`."""
    order = np.argsort(-scores, kind="stable")
    x0, y0, x1, y1 = boxes.T
    areas = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    keep = []
    while order.size and (limit is None or len(keep) < limit):
        best, rest = order[0], order[1:]
        keep.append(best)
        width = np.clip(np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]), 0, None)
        height = np.clip(np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]), 0, None)
        overlap = width * height
        union = areas[best] + areas[rest] - overlap
        iou = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        survives = iou <= iou_threshold
        if classes is not None:
            survives |= classes[rest] != classes[best]
        order = rest[survives]
    return np.array(keep, dtype=np.intp)


def classwise_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
                  limit: int | None = None) -> np.ndarray:
    """NMS within each class (boxes of different classes never suppress each other); the best `limit`
    of what it keeps, best first."""
    return nms(boxes, scores, iou_threshold, classes, limit)


@dataclass
class Decoded:
    boxes: np.ndarray  # [n, 4] x0, y0, x1, y1 in original image pixels
    confidences: np.ndarray  # [n]
    classes: np.ndarray  # [n] class ids
    #: the best confidence of any anchor whose best class is anomalous (0 when there is none): the
    #: image's anomaly score. NMS always keeps the best box of a class, so this is also the best
    #: confidence among the anomalous detections at any cut at or below it.
    anomaly_score: float


def decode(output: np.ndarray, placement: Letterbox, confidence: float, anomalous: np.ndarray,
           iou_threshold: float = IOU_THRESHOLD, max_detections: int = MAX_DETECTIONS) -> Decoded:
    """Detections of one image from the graph's `[1, 4 + classes, anchors]` output."""
    rows = np.asarray(output[0], dtype=np.float32).T  # [anchors, 4 + classes]
    class_scores = rows[:, 4:]
    classes = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(rows)), classes].astype(np.float64)
    anomalous_scores = scores[anomalous[classes]]
    anomaly_score = float(anomalous_scores.max()) if anomalous_scores.size else 0.0
    candidates = np.flatnonzero(scores >= confidence)
    if candidates.size > MAX_CANDIDATES:
        candidates = candidates[np.argsort(-scores[candidates], kind="stable")[:MAX_CANDIDATES]]
    centre = rows[candidates, :4].astype(np.float64)
    boxes = np.stack([centre[:, 0] - centre[:, 2] / 2, centre[:, 1] - centre[:, 3] / 2,
                      centre[:, 0] + centre[:, 2] / 2, centre[:, 1] + centre[:, 3] / 2], axis=1).reshape(-1, 4)
    kept = classwise_nms(boxes, scores[candidates], classes[candidates], iou_threshold, max_detections)
    return Decoded(placement.to_image(boxes[kept]), scores[candidates][kept], classes[candidates][kept], anomaly_score)


class YoloDetector:
    """One detector graph with its class names; `detect(image, confidence)` is the whole serving path."""

    def __init__(self, graph, names: list[str], anomalous: list[str], input_size: tuple[int, int] | None = None,
                 iou_threshold: float = IOU_THRESHOLD, max_detections: int = MAX_DETECTIONS, threads: int | None = None):
        self.session = graph if hasattr(graph, "run") else open_session(graph, threads, "detector graph")
        self.layout = inspect_graph(self.session, input_size)
        if len(names) != self.layout.class_count:
            raise DetectorError(f"the names give {len(names)} classes but the detector predicts {self.layout.class_count} "
                                f"(its output has 4 + {self.layout.class_count} rows per anchor)")
        unknown = [name for name in anomalous if name not in names]
        if unknown:
            raise DetectorError(f"anomalous classes {unknown} are not among the detector's classes {list(names)}")
        self.names = list(names)
        self.anomalous_names = [name for name in names if name in set(anomalous)]
        self.anomalous = np.array([name in set(anomalous) for name in names], dtype=bool)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self._dtype = np.float16 if self.layout.input_type == "float16" else np.float32

    @property
    def input_size(self) -> tuple[int, int]:
        return self.layout.input_size

    def raw_output(self, image: Image.Image) -> tuple[np.ndarray, Letterbox]:
        tensor, placement = letterbox(image, self.layout.input_size)
        output = self.session.run([self.layout.output_name], {self.layout.input_name: tensor.astype(self._dtype)})[0]
        return output, placement

    def decode(self, image: Image.Image, confidence: float) -> Decoded:
        output, placement = self.raw_output(image)
        return decode(output, placement, confidence, self.anomalous, self.iou_threshold, self.max_detections)

    def detect(self, image: Image.Image, confidence: float) -> tuple[list[dict], float]:
        """(detections at or above `confidence`, best first; the image's anomaly score)."""
        decoded = self.decode(image, confidence)
        detections = [
            {"label": self.names[int(c)], "class_id": int(c), "confidence": round(float(s), 6),
             "box": [round(float(v), 2) for v in box], "anomalous": bool(self.anomalous[int(c)])}
            for box, s, c in zip(decoded.boxes, decoded.confidences, decoded.classes)
        ]
        return detections, decoded.anomaly_score

"""The detector's serving path on hand-made graphs whose output is known: decoding, class-wise NMS,
the confidence cut, the letterbox and the verdict, checked against boxes worked out by hand."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inference.errors import BadRequest
from inference.kinds.detector.yolo import LETTERBOX_FILL, YoloDetector, letterbox, nms, resize_linear
from tests.kinds.graphs import NAMES, anchors, constant_graph

ANOMALOUS = ["crack", "hot spot"]

#              cx,  cy,   w,  h, crack, normal, hot spot
KNOWN = anchors(
    (100, 100, 40, 40, 0.90, 0.05, 0.10),  # crack [80, 80, 120, 120]
    (104, 100, 40, 40, 0.80, 0.00, 0.00),  # crack, IoU 0.818 with the first: suppressed
    (100, 100, 40, 40, 0.00, 0.00, 0.85),  # hot spot on the crack's box: another class, kept
    (112, 100, 40, 40, 0.70, 0.00, 0.00),  # crack, IoU 0.538 with the first: kept
    (400, 300, 100, 50, 0.20, 0.60, 0.10),  # normal [350, 275, 450, 325]
    (500, 500, 60, 60, 0.30, 0.00, 0.00),  # crack below the default cut
    (630, 10, 40, 40, 0.00, 0.00, 0.55),  # hot spot reaching past the corner: clipped
    (320, 320, 10, 10, 0.45, 0.52, 0.00),  # normal wins over its crack score: not an anomaly
)


def png(size, colour=(90, 90, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    from inference.bundle import write_bundle
    from inference.kinds.detector.bundle import contents
    from inference.model import load_model

    root = tmp_path_factory.mktemp("known")
    graph = constant_graph(root / "known.onnx", KNOWN)
    write_bundle(root / "bundle", *contents(graph, ["thermal"], NAMES, ANOMALOUS, (640, 640), lineage={"version": "t-1"}))
    return load_model(root / "bundle")


def boxes(result):
    return [(d["label"], d["confidence"], d["box"]) for d in result["detections"]]


def test_known_boxes_are_decoded_suppressed_per_class_and_cut_at_the_threshold(known):
    result = known.predict_bytes(png((640, 640)), "thermal")
    assert boxes(result) == [
        ("crack", 0.9, [80.0, 80.0, 120.0, 120.0]),
        ("hot spot", 0.85, [80.0, 80.0, 120.0, 120.0]),
        ("crack", 0.7, [92.0, 80.0, 132.0, 120.0]),
        ("normal", 0.6, [350.0, 275.0, 450.0, 325.0]),
        ("hot spot", 0.55, [610.0, 0.0, 640.0, 30.0]),
        ("normal", 0.52, [315.0, 315.0, 325.0, 325.0]),
    ]
    assert [d["anomalous"] for d in result["detections"]] == [True, True, True, False, True, False]
    assert result["is_anomaly"] is True and result["anomaly_score"] == result["raw_score"] == 0.9
    assert result["threshold"] == 0.5 and result["model"] == {"kind": "detector", "version": "t-1"}
    lower = known.predict_bytes(png((640, 640)), "thermal", threshold=0.25)
    assert boxes(lower)[-1] == ("crack", 0.3, [470.0, 470.0, 530.0, 530.0]) and len(lower["detections"]) == 7
    higher = known.predict_bytes(png((640, 640)), "thermal", threshold=0.95)
    assert higher["detections"] == [] and higher["is_anomaly"] is False and higher["anomaly_score"] == 0.9


def test_only_normal_boxes_are_no_anomaly(tmp_path):
    graph = constant_graph(tmp_path / "normal.onnx", anchors((50, 50, 20, 20, 0.49, 0.95, 0.2), (300, 300, 20, 20, 0.1, 0.7, 0.0)))
    detector = YoloDetector(str(graph), NAMES, ANOMALOUS)
    detections, score = detector.detect(Image.new("RGB", (640, 640)), 0.0)
    assert [(d["label"], d["confidence"]) for d in detections] == [("normal", 0.95), ("normal", 0.7)]
    assert score == 0.0  # no anchor's best class is anomalous, whatever its second-best score


def test_boxes_are_mapped_back_through_the_letterbox(tmp_path):
    # a 320×160 image is scaled ×2 to 640×320 and centred: 160 grey rows above and below
    graph = constant_graph(tmp_path / "letterbox.onnx", anchors((100, 260, 40, 40, 0.9, 0.0, 0.0),
                                                                 (600, 470, 80, 20, 0.0, 0.0, 0.8),
                                                                 (320, 100, 40, 40, 0.0, 0.7, 0.0)))
    detector = YoloDetector(str(graph), NAMES, ANOMALOUS)
    detections, _ = detector.detect(Image.new("RGB", (320, 160)), 0.5)
    assert [(d["label"], d["box"]) for d in detections] == [
        ("crack", [40.0, 40.0, 60.0, 60.0]),
        ("hot spot", [280.0, 150.0, 320.0, 160.0]),
        ("normal", [150.0, 0.0, 170.0, 0.0]),  # a box in the padding collapses onto the image's edge
    ]


def test_letterbox_scales_centres_and_pads_with_grey():
    tensor, placement = letterbox(Image.new("RGB", (320, 160), (10, 20, 30)), (640, 640))
    assert tensor.shape == (1, 3, 640, 640) and tensor.dtype == np.float32
    assert (placement.gain, placement.left, placement.top) == (2.0, 0, 160)
    pixels = np.rint(tensor[0].transpose(1, 2, 0) * 255)
    assert np.all(pixels[:160] == LETTERBOX_FILL) and np.all(pixels[480:] == LETTERBOX_FILL)
    assert np.all(pixels[160:480] == [10, 20, 30])
    # an odd padding puts the extra grey row below, as Ultralytics does: 427 rows of image, 106 above, 107 below
    tensor, placement = letterbox(Image.new("RGB", (300, 200), (200, 0, 0)), (640, 640))
    pixels = np.rint(tensor[0].transpose(1, 2, 0) * 255)
    assert placement.top == 106 and np.all(pixels[:106] == LETTERBOX_FILL) and np.all(pixels[533:] == LETTERBOX_FILL)
    assert np.all(pixels[106:533] == [200, 0, 0])


def test_resize_is_opencv_bilinear():
    # OpenCV INTER_LINEAR, half-pixel centres: 2 → 4 samples of [0, 100] give 0, 25, 75, 100
    row = resize_linear(np.array([[[0], [100]]], dtype=np.uint8), 4, 1)
    assert row[0, :, 0].tolist() == [0, 25, 75, 100]
    # downscaling does not blur (no anti-aliasing): 4 → 2 averages neighbouring pairs
    row = resize_linear(np.array([[[0], [40], [80], [120]]], dtype=np.uint8), 2, 1)
    assert row[0, :, 0].tolist() == [20, 100]


def test_nms_suppresses_above_the_iou_threshold_only():
    a, b = [0, 0, 100, 100], [25, 0, 125, 100]  # IoU exactly 0.6
    pair, scores = np.array([a, b], dtype=np.float64), np.array([0.9, 0.8])
    assert nms(pair, scores, 0.6).tolist() == [0, 1]
    assert nms(pair, scores, 0.59).tolist() == [0]
    # the better box wins, whatever the order
    assert nms(pair[::-1], scores[::-1], 0.5).tolist() == [1]
    # a chain: c overlaps b (suppressed by a) but not a, so c stays
    chain = np.array([a, b, [50, 0, 150, 100]], dtype=np.float64)
    assert nms(chain, np.array([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]


def test_a_threshold_out_of_range_and_an_unknown_class_are_refused(known):
    from inference.errors import UnknownClass

    for bad in (1.5, -0.1, "0.5", True):
        with pytest.raises(BadRequest, match="threshold"):
            known.predict_bytes(png((64, 64)), "thermal", threshold=bad)
    with pytest.raises(UnknownClass):
        known.predict_bytes(png((64, 64)), "tiles")
    with pytest.raises(BadRequest, match="offers"):
        known.predict_bytes(png((64, 64)), "thermal", outputs=["heatmap"])


def test_describe_names_the_labels_and_the_anomalous_ones(known):
    described = known.describe()
    assert described["kind"] == "detector" and described["outputs"] == ["detections"]
    assert described["detector"]["labels"] == NAMES and described["detector"]["anomalous_labels"] == ANOMALOUS
    assert described["classes"]["thermal"]["calibration"] == "confidence"


def test_class_wise_nms_with_a_limit_keeps_the_best_of_per_class_nms():
    from inference.kinds.detector.yolo import classwise_nms

    rng = np.random.default_rng(4)
    corner = rng.uniform(0, 600, (600, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(10, 80, (600, 2))], axis=1)
    scores, classes = rng.uniform(0, 1, 600), rng.integers(0, 3, 600)
    per_class = np.concatenate([np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], 0.5)]
                                for c in range(3)])
    reference = per_class[np.argsort(-scores[per_class], kind="stable")]
    assert len(reference) > 100
    assert classwise_nms(boxes, scores, classes, 0.5).tolist() == reference.tolist()
    assert classwise_nms(boxes, scores, classes, 0.5, limit=40).tolist() == reference[:40].tolist()


def test_ivadas_predict_prints_the_boxes_of_a_detector_bundle(known, tmp_path, capsys):
    from infra.cli import main

    image = tmp_path / "panel.png"
    image.write_bytes(png((640, 640)))
    assert main(["predict", str(image), "--class", "thermal", "--bundle", str(known.root), "--threshold", "0.8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ANOMALY: score 0.900 (threshold 0.80")
    assert out[1:] == ["  crack 0.900 box [80.0, 80.0, 120.0, 120.0] (anomalous)",
                       "  hot spot 0.850 box [80.0, 80.0, 120.0, 120.0] (anomalous)"]
    assert main(["predict", str(image), "--class", "thermal", "--bundle", str(known.root), "--heatmap", str(tmp_path / "h.png")]) == 2
    assert "gives no heatmap" in capsys.readouterr().err

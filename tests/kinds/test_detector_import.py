"""`ivadas models import`: a YOLO-shaped detector made in torch goes through import → registry →
approval → endpoint; bad detectors, names and labelled sets are refused and nothing is registered;
the evaluation's mAP, precision and recall are checked against values worked out by hand."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infra.cli import main
from pipelines.registry import APPROVED, PENDING, LocalRegistry
from tests.kinds.graphs import NAMES, anchors, constant_graph, export_tiny_yolo, ultralytics_metadata
from tests.kinds.test_detector_decoding import KNOWN

GROUP = "ivadas-training-detector"


def write_yaml(path, names):
    path.write_text("path: .\nval: images/val\nnames:\n" + "".join(f"  {i}: {name}\n" for i, name in enumerate(names)))
    return path


def run_cli(capsys, *argv):
    code = main(list(map(str, argv)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def nothing_registered(store):
    imports = store / "pipelines" / "ivadas-training" / "imports"
    leftovers = list(imports.iterdir()) if imports.is_dir() else []
    return LocalRegistry(store).list() == [] and leftovers == []


# ------------------------------------------------------------------- a torch detector, end to end


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    model = export_tiny_yolo(root / "thermal.onnx", len(NAMES), metadata=ultralytics_metadata(NAMES))
    return root, model


def photo(seed=0, size=(640, 640)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size[1] // 32, size[0] // 32, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)


def reference_detections(model, image: Image.Image, confidence: float, iou: float = 0.7):
    """What the detector should answer for a 640×640 image (no letterbox), computed independently:
    torch's output, each anchor's best class, and greedy NMS per class written as plain loops."""
    import torch

    with torch.no_grad():
        rows = model(torch.from_numpy(np.asarray(image, dtype=np.float32).transpose(2, 0, 1)[None] / 255))[0].T.numpy()
    found = []
    for row in rows:
        cls = int(np.argmax(row[4:]))
        if row[4 + cls] >= confidence:
            cx, cy, w, h = (float(v) for v in row[:4])
            found.append((float(row[4 + cls]), cls, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
    found.sort(key=lambda d: -d[0])

    def overlap(a, b):
        inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    kept = []
    for detection in found:
        if all(k[1] != detection[1] or overlap(k[2], detection[2]) <= iou for k in kept):
            kept.append(detection)
    clip = lambda box: [min(max(v, 0.0), 640.0) for v in box]  # noqa: E731
    return [(NAMES[c], s, clip(b)) for s, c, b in kept]


def test_a_torch_yolo_is_imported_approved_and_served_as_torch_computes_it(tiny, tmp_path, capsys):
    from inference.bundle import extract_bundle
    from tests.serving.conftest import http, serving

    root, model = tiny
    store = tmp_path / "store"
    names = write_yaml(root / "data.yaml", NAMES)
    code, out, err = run_cli(capsys, "models", "import", root / "thermal.onnx", "--names", names, "--anomalous-classes",
                             "crack,hot spot", "--class", "thermal", "--store", store)
    assert code == 0, err
    assert "registered ivadas-training-detector/1 (PendingManualApproval)" in out and "anomalous: crack, hot spot" in out
    version = LocalRegistry(store).get(GROUP, 1)
    assert version.status == PENDING and version.metadata["model_kind"] == "detector"
    assert version.metadata["anomalous_classes"] == "crack,hot spot" and version.metadata["input_size"] == "640x640"
    assert run_cli(capsys, "models", "approve", "detector/1", "--reason", "checked on line 3", "--store", store)[0] == 0
    assert LocalRegistry(store).served(GROUP).id == f"{GROUP}/1"

    image = photo(3)
    threshold = threshold_for(model, image)
    expected = reference_detections(model, image, threshold)
    assert 3 <= len(expected) <= 40  # the cut leaves a handful of boxes to compare
    gaps = np.diff([-confidence for _, confidence, _ in expected])
    assert gaps.size == 0 or gaps.min() > 1e-6  # their order cannot depend on float rounding
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    served = extract_bundle(version.model_url, tmp_path / "served")
    with serving(served, tmp_path / "endpoint.log", workers=1) as url:
        status, answer = http("POST", url + "/invocations", {"class_name": "thermal", "threshold": threshold,
                                                             "image_base64": base64.b64encode(buffer.getvalue()).decode()})
        assert status == 200, answer
        status, described = http("POST", url + "/invocations", {"describe": True})
        assert described["detector"]["labels"] == NAMES and described["outputs"] == ["detections"]
    got = [(d["label"], d["confidence"], d["box"]) for d in answer["detections"]]
    assert [g[0] for g in got] == [e[0] for e in expected]
    for (_, confidence, box), (_, want_confidence, want_box) in zip(got, expected):
        assert confidence == pytest.approx(want_confidence, abs=1e-5)
        assert box == pytest.approx(want_box, abs=0.02)
    anomalous_expected = any(label in ("crack", "hot spot") for label, _, _ in expected)
    assert answer["is_anomaly"] is anomalous_expected
    assert answer["is_anomaly"] is any(d["anomalous"] for d in answer["detections"])


def threshold_for(model, image) -> float:
    """A confidence cut that leaves a few dozen anchors of the torch model's output (chosen from it)."""
    import torch

    with torch.no_grad():
        rows = model(torch.from_numpy(np.asarray(image, dtype=np.float32).transpose(2, 0, 1)[None] / 255))[0]
    best = rows[4:].max(dim=0).values.numpy()
    return float(np.round(np.quantile(best, 0.999), 3))


def test_names_come_from_the_export_metadata_when_no_names_file_is_given(tiny, tmp_path, capsys):
    root, _ = tiny
    store = tmp_path / "store"
    code, out, err = run_cli(capsys, "models", "import", root / "thermal.onnx", "--anomalous-classes", "0",
                             "--anomalous-classes", "2", "--approval", APPROVED, "--store", store)
    assert code == 0, err
    version = LocalRegistry(store).get(GROUP, 1)
    assert version.status == APPROVED and version.metadata["classes"] == "thermal"  # the file's name
    from inference.model import load_model

    assert load_model(version.model_url).manifest["config"]["anomalous_classes"] == ["crack", "hot spot"]


def test_the_serving_path_needs_neither_torch_nor_onnx(tiny, tmp_path, capsys):
    import subprocess
    import sys

    root, _ = tiny
    store = tmp_path / "store"
    assert run_cli(capsys, "models", "import", root / "thermal.onnx", "--anomalous-classes", "crack", "--store", store)[0] == 0
    bundle = LocalRegistry(store).get(GROUP, 1).model_url
    script = (
        "import sys\n"
        "for name in ('torch', 'onnx', 'sklearn', 'yaml', 'pipelines'): sys.modules[name] = None\n"
        "from PIL import Image\n"
        "from inference.model import load_model\n"
        f"model = load_model({bundle!r})\n"
        "print(model.predict_image(Image.new('RGB', (800, 600), (128, 60, 20)), 'thermal', 0.3)['model']['kind'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "detector"


# ----------------------------------------------------------------------------- bad input


def bad_import(capsys, store, graph, *extra):
    code, out, err = run_cli(capsys, "models", "import", graph, "--anomalous-classes", "crack", "--store", store, "--quiet", *extra)
    assert code == 2, out + err
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert nothing_registered(store)
    return lines[0]


def test_a_graph_that_is_not_a_detector_is_refused(tmp_path, capsys):
    store = tmp_path / "store"
    names = write_yaml(tmp_path / "data.yaml", NAMES)
    flat = constant_graph(tmp_path / "flat.onnx", KNOWN, output_rank=2)
    assert "rank 2" in bad_import(capsys, store, flat, "--names", names)
    grey = constant_graph(tmp_path / "grey.onnx", KNOWN, input_shape=(1, 1, 640, 640))
    assert "one RGB image, [1, 3, H, W]" in bad_import(capsys, store, grey, "--names", names)
    volume = constant_graph(tmp_path / "volume.onnx", KNOWN, input_shape=(1, 3, 8, 64, 64))
    assert "[1, 3, H, W]" in bad_import(capsys, store, volume, "--names", names)
    segmenter = constant_graph(tmp_path / "segmenter.onnx", KNOWN, outputs=2)
    assert "has 2 outputs" in bad_import(capsys, store, segmenter, "--names", names)
    text = tmp_path / "notes.onnx"
    text.write_text("not a graph")
    assert "not an ONNX graph" in bad_import(capsys, store, text, "--names", names)
    assert "no ONNX file" in bad_import(capsys, store, tmp_path / "missing.onnx", "--names", names)


def test_names_that_disagree_with_the_model_are_refused(tmp_path, capsys):
    store = tmp_path / "store"
    graph = constant_graph(tmp_path / "known.onnx", KNOWN)
    two = write_yaml(tmp_path / "two.yaml", NAMES[:2])
    assert "names give 2 classes but the detector predicts 3" in bad_import(capsys, store, graph, "--names", two)
    assert "carries no class names" in bad_import(capsys, store, graph)
    twice = tmp_path / "twice.names"
    twice.write_text("crack\ncrack\nhot spot\n")
    assert "more than once" in bad_import(capsys, store, graph, "--names", twice)
    gaps = tmp_path / "gaps.yaml"
    gaps.write_text("names:\n  0: crack\n  2: hot spot\n  3: normal\n")
    assert "without gaps" in bad_import(capsys, store, graph, "--names", gaps)
    names = write_yaml(tmp_path / "data.yaml", NAMES)
    code, out, err = run_cli(capsys, "models", "import", graph, "--names", names, "--anomalous-classes", "rust", "--store", store)
    assert code == 2 and "'rust' is not one of the detector's classes" in err and nothing_registered(store)
    code, out, err = run_cli(capsys, "models", "import", graph, "--names", names, "--anomalous-classes", "crack",
                             "--class", "line 3", "--store", store)
    assert code == 2 and "--class" in err and nothing_registered(store)


def test_a_dynamic_input_takes_the_exports_size_and_a_fixed_one_refuses_another(tmp_path, capsys):
    store = tmp_path / "store"
    dynamic = constant_graph(tmp_path / "dynamic.onnx", KNOWN, input_shape=(1, 3, "height", "width"),
                             metadata={**ultralytics_metadata(NAMES), "imgsz": "[320, 480]"})
    assert run_cli(capsys, "models", "import", dynamic, "--anomalous-classes", "crack", "--store", store)[0] == 0
    assert LocalRegistry(store).get(GROUP, 1).metadata["input_size"] == "480x320"
    code, out, err = run_cli(capsys, "models", "import", dynamic, "--anomalous-classes", "crack", "--image-size", "256",
                             "--store", store)
    assert code == 0 and LocalRegistry(store).get(GROUP, 2).metadata["input_size"] == "256x256"
    fixed = constant_graph(tmp_path / "fixed.onnx", KNOWN, metadata=ultralytics_metadata(NAMES))
    code, out, err = run_cli(capsys, "models", "import", fixed, "--anomalous-classes", "crack", "--image-size", "1280",
                             "--store", store)
    assert code == 2 and "fixed at 640×640" in err and len(LocalRegistry(store).list()) == 2


def labelled_set(root, lines_by_image: dict[str, str], size=(640, 640)):
    for name, lines in lines_by_image.items():
        (root / "images" / "val").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "val").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (70, 70, 70)).save(root / "images" / "val" / f"{name}.png")
        if lines is not None:
            (root / "labels" / "val" / f"{name}.txt").write_text(lines)
    return root


def test_a_labelled_set_with_bad_boxes_is_refused(tmp_path, capsys):
    store = tmp_path / "store"
    graph = constant_graph(tmp_path / "known.onnx", KNOWN)
    names = write_yaml(tmp_path / "data.yaml", NAMES)
    outside = labelled_set(tmp_path / "outside", {"a": "0 0.5 0.5 0.2 0.2\n", "b": "2 0.95 0.5 0.2 0.2\n"})
    message = bad_import(capsys, store, graph, "--names", names, "--eval-data", outside)
    assert "outside the image" in message and "b.txt:1" in message and "a.txt" not in message
    unknown = labelled_set(tmp_path / "unknown", {"a": "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n"})
    message = bad_import(capsys, store, graph, "--names", names, "--eval-data", unknown)
    assert "a.txt:2: unknown class id 7" in message
    malformed = labelled_set(tmp_path / "malformed", {"a": "0 0.5 0.5 0.2\n", "b": "1 0.5 0.5 0 0.1\n"})
    message = bad_import(capsys, store, graph, "--names", names, "--eval-data", malformed)
    assert "2 problem(s)" in message and "4 values" in message and "no area" in message
    assert "no labelled set" in bad_import(capsys, store, graph, "--names", names, "--eval-data", tmp_path / "nowhere")
    broken = labelled_set(tmp_path / "broken", {"a": "0 0.5 0.5 0.2 0.2\n"})
    (broken / "images" / "val" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert "cannot be read" in bad_import(capsys, store, graph, "--names", names, "--eval-data", broken)


# ------------------------------------------------------------------------------ evaluation


def test_evaluation_gives_the_hand_computed_map_precision_and_recall(tmp_path, capsys):
    """One 640×640 image; ground truth: cracks at [80, 80, 120, 120] and [470, 470, 530, 530], a hot
    spot at [610, 0, 640, 30], a normal part at [350, 275, 450, 325]. The graph's boxes (KNOWN) give:
    - crack: 0.9 hit, 0.7 miss (the crack it overlaps is taken), 0.3 hit. Precision 1, 1/2, 2/3 at
      recall 1/2, 1/2, 1: 101-point AP = (51 · 1 + 50 · 2/3) / 101. At the 0.5 cut: P 1/2, R 1/2.
    - hot spot: 0.85 miss, 0.55 hit: AP = 1/2; at the cut P 1/2, R 1.
    - normal: 0.6 hit, 0.52 miss (0.45 crack is not its class): AP 1; at the cut P 1/2, R 1.
    """
    store = tmp_path / "store"
    graph = constant_graph(tmp_path / "known.onnx", KNOWN)

    def line(cls, x0, y0, x1, y1):
        return f"{cls} {(x0 + x1) / 1280} {(y0 + y1) / 1280} {(x1 - x0) / 640} {(y1 - y0) / 640}\n"

    truth = line(0, 80, 80, 120, 120) + line(0, 470, 470, 530, 530) + line(2, 610, 0, 640, 30) + line(1, 350, 275, 450, 325)
    data = write_yaml(labelled_set(tmp_path / "set", {"line3": truth}) / "data.yaml", NAMES)  # val: images/val
    code, out, err = run_cli(capsys, "models", "import", graph, "--names", data, "--anomalous-classes", "crack,hot spot",
                             "--eval-data", data, "--store", store, "--class", "thermal")
    assert code == 0, err
    version = LocalRegistry(store).get(GROUP, 1)
    labels = version.metrics["labels"]
    crack_ap = (51 + 50 * 2 / 3) / 101
    assert labels["crack"]["ap50"] == pytest.approx(crack_ap, abs=1e-12)
    assert (labels["crack"]["precision"], labels["crack"]["recall"], labels["crack"]["instances"]) == (0.5, 0.5, 2)
    assert labels["hot spot"]["ap50"] == pytest.approx(0.5, abs=1e-12)
    assert (labels["hot spot"]["precision"], labels["hot spot"]["recall"]) == (0.5, 1.0)
    assert labels["normal"]["ap50"] == pytest.approx(1.0, abs=1e-12)
    assert (labels["normal"]["precision"], labels["normal"]["recall"]) == (0.5, 1.0)
    assert version.metrics["mean"]["map50"] == pytest.approx((crack_ap + 0.5 + 1.0) / 3, abs=1e-12)
    assert version.metrics["classes"]["thermal"]["map50"] == version.metrics["mean"]["map50"]
    assert "mAP@0.5 0.778" in out and "crack" in out
    report = json.loads((Path(version.model_url).parent / "evaluation" / "evaluation.json").read_text())
    assert report["images"] == 1 and report["anomalous_images"] == 1 and report["mean"]["image_auroc"] is None


def test_average_precision_and_matching_by_hand():
    from pipelines.detector.evaluation import average_precision, match_image

    assert average_precision(np.array([0.9, 0.8]), np.array([True, True]), 2) == 1.0
    assert average_precision(np.array([0.9]), np.array([False]), 1) == 0.0
    assert average_precision(np.array([]), np.array([], dtype=bool), 3) == 0.0
    assert average_precision(np.array([0.9]), np.array([True]), 0) is None
    # half the boxes found at precision 1: recall points 0 … 0.5 count, the rest are 0
    assert average_precision(np.array([0.9]), np.array([True]), 2) == pytest.approx(51 / 101)
    # the better detection takes the box; the second overlapping one is a false positive
    truth = np.array([[0, 0, 10, 10]], dtype=float)
    hits = match_image(np.array([[0, 0, 10, 10], [1, 0, 11, 10]], dtype=float), np.array([0.6, 0.9]), np.array([0, 0]),
                       truth, np.array([0]))
    assert hits.tolist() == [False, True]
    # another class never matches; IoU below 0.5 never matches
    assert match_image(truth, np.array([0.9]), np.array([1]), truth, np.array([0])).tolist() == [False]
    assert match_image(np.array([[5, 0, 15, 10]], dtype=float), np.array([0.9]), np.array([0]), truth,
                       np.array([0])).tolist() == [False]  # IoU 1/3


# ------------------------------------------------------------------------------------ AWS


def test_import_to_aws_uploads_the_bundle_and_registers_it_with_the_endpoint_image(tmp_path, monkeypatch):
    import boto3
    from moto import mock_aws

    from inference.kinds.detector.yolo import DetectorError
    from pipelines.detector.importer import ImportRequest, import_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    graph = constant_graph(tmp_path / "known.onnx", KNOWN, metadata=ultralytics_metadata(NAMES))
    data = labelled_set(tmp_path / "set", {"a": "0 0.15625 0.15625 0.0625 0.0625\n"})
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="ivadas-artifacts")
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        request = ImportRequest(graph, ["crack", "hot spot"], eval_data=data, product_classes=["thermal"], pipeline="ivadas-dev-training")
        result = import_aws(request, "ivadas-artifacts", "123.dkr.ecr.us-east-1.amazonaws.com/ivadas-endpoint:1", s3=s3,
                            sagemaker=sagemaker)
        assert result.version.id == "ivadas-dev-training-detector/1" and result.version.status == PENDING
        assert result.model_url.startswith("s3://ivadas-artifacts/pipelines/ivadas-dev-training/imports/")
        package = sagemaker.describe_model_package(ModelPackageName=result.version.arn)
        container = package["InferenceSpecification"]["Containers"][0]
        assert container["Image"].endswith("ivadas-endpoint:1") and container["ModelDataUrl"] == result.model_url
        assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].endswith("/evaluation.json")
        key = result.model_url[len("s3://ivadas-artifacts/"):]
        from inference.bundle import manifest_of

        archive = tmp_path / "downloaded.tar.gz"
        s3.download_file("ivadas-artifacts", key, str(archive))
        assert manifest_of(archive)["kind"] == "detector"
        with pytest.raises(DetectorError, match="artifacts-bucket"):
            import_aws(request, "", "image", s3=s3, sagemaker=sagemaker)
        assert len(sagemaker.list_model_packages(ModelPackageGroupName="ivadas-dev-training-detector")["ModelPackageSummaryList"]) == 1


def test_ivadas_models_import_target_aws(tmp_path, monkeypatch, capsys):
    import boto3
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(key, value)
    graph = constant_graph(tmp_path / "thermal.onnx", KNOWN, metadata=ultralytics_metadata(NAMES))
    with mock_aws():
        boto3.client("s3", region_name="eu-west-1").create_bucket(
            Bucket="ivadas-dev-artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        common = ["models", "import", graph, "--anomalous-classes", "crack", "--target", "aws", "--region", "eu-west-1",
                  "--name", "ivadas-dev-training"]
        code, out, err = run_cli(capsys, *common, "--inference-image-uri", "123.dkr.ecr.eu-west-1.amazonaws.com/ivadas-endpoint:1")
        assert code == 2 and err.strip() == ("error: --target aws needs --artifacts-bucket (the stack's artifacts bucket) to "
                                             "upload the bundle to")
        code, out, err = run_cli(capsys, *common, "--artifacts-bucket", "ivadas-dev-artifacts", "--inference-image-uri",
                                 "123.dkr.ecr.eu-west-1.amazonaws.com/ivadas-endpoint:1")
        assert code == 0, err
        assert "registered ivadas-dev-training-detector/1 (PendingManualApproval)" in out
        assert "bundle: s3://ivadas-dev-artifacts/pipelines/ivadas-dev-training/imports/" in out
        code, out, err = run_cli(capsys, "models", "list", "--target", "aws", "--region", "eu-west-1", "--name",
                                 "ivadas-dev-training")
        assert "ivadas-dev-training-detector/1" in out

"""Letterbox and tiles at training, evaluation and serving: the endpoint answers with the scores
evaluation reported, and its heatmaps and regions are in the original image's coordinates."""

import base64
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from inference.kinds.patchcore.config import ModelConfig
from inference.model import load_model
from pipelines.kinds.patchcore.training import train_bundle
from pipelines.vision.backbones import BackboneSource
from pipelines.vision.datasets import read_class
from pipelines.vision.evaluation import evaluate_bundle, evaluation_samples, score_class
from pipelines.vision.synthetic import generate
from tests.serving.conftest import b64, http, serving

WIDE = (320, 160)  # every image of the class: two 160 px parts side by side, defects only in the left one


@pytest.fixture(scope="module")
def wide_data(tmp_path_factory):
    """An MVTec-layout class of 2:1 images: [part, another good part]; masks follow the left part."""
    square = generate(tmp_path_factory.mktemp("square") / "d", ["tiles"], size=160, train_count=24, test_good_count=6,
                      test_defect_count=3, seed=2)
    root = tmp_path_factory.mktemp("wide") / "d"
    goods = sorted((square / "tiles/test/good").glob("*.png")) + sorted((square / "tiles/train/good").glob("*.png"))
    for index, path in enumerate(sorted((square / "tiles").rglob("*.png"))):
        relative = path.relative_to(square)
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        left = np.asarray(Image.open(path).convert("L" if "ground_truth" in relative.parts else "RGB"))
        if "ground_truth" in relative.parts:
            right = np.zeros_like(left)
        else:
            right = np.asarray(Image.open(goods[(index * 7) % len(goods)]).convert("RGB"))
        Image.fromarray(np.concatenate([left, right], axis=1)).save(target)
    return root


@pytest.fixture(scope="module", params=["letterbox", "tile"])
def wide_bundle(request, wide_data, tmp_path_factory):
    mode = request.param
    config = ModelConfig(image_size=320 if mode == "letterbox" else 96, coreset_ratio=0.05, preprocessing=mode)
    output = tmp_path_factory.mktemp(f"bundle-{mode}") / "model.tar.gz"
    report = train_bundle(wide_data, ["tiles"], config, BackboneSource("resnet18", "random"), output,
                          lineage={"version": mode}, quiet=True)
    return mode, output, report


def _mask_box(sample) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(np.asarray(Image.open(sample.mask)) > 127)
    return cols.min(), rows.min(), cols.max() + 1, rows.max() + 1


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_the_bundle_records_its_preprocessing(wide_bundle):
    mode, bundle, report = wide_bundle
    preprocessing = report.manifest["preprocessing"]
    assert preprocessing["mode"] == report.manifest["config"]["preprocessing"] == mode
    assert preprocessing["fill"] == [124, 116, 104]  # the backbone's mean colour
    if mode == "tile":
        assert (preprocessing["tile_size"], preprocessing["tile_overlap"]) == (96, 0.25)
    assert load_model(bundle).describe()["preprocessing"] == mode


def test_the_endpoint_serves_the_scores_evaluation_reported(wide_bundle, wide_data, tmp_path):
    mode, bundle, _ = wide_bundle
    model = load_model(bundle)
    data = read_class(wide_data, "tiles")
    scored = score_class(model, data, "tiles", evaluation_samples(model, data, "tiles", "all"), quiet=True)
    assert scored.raw_maps[0].shape == (160, 320)  # the image's rows and columns
    report = evaluate_bundle(bundle, wide_data, tmp_path / "report", split="all", quiet=True)["classes"]["tiles"]
    assert report["image_auroc"] >= 0.9 and report["pixel_auroc"] >= 0.9, report
    located = 0
    with serving(bundle, tmp_path / "server.log") as url:
        for sample, raw_score in zip(scored.samples, scored.raw_scores):
            status, answer = http("POST", url + "/invocations", {"class_name": "tiles", "image_base64": b64(sample.path)})
            assert status == 200, answer
            assert answer["raw_score"] == round(float(raw_score), 6), sample.key
            heatmap = Image.open(io.BytesIO(base64.b64decode(answer["heatmap_png_base64"])))
            assert heatmap.size == WIDE
            if sample.mask is not None and answer["is_anomaly"]:
                worst = answer["regions"][0]["box"]
                assert 0 <= worst[0] < worst[2] <= WIDE[0] and 0 <= worst[1] < worst[3] <= WIDE[1]
                assert _overlap(worst, _mask_box(sample)), (sample.key, worst, _mask_box(sample))
                located += 1
    assert located >= 2


def test_bundles_from_before_the_modes_serve_as_they_did(patchcore_bundle, detector, demo_data, tmp_path):
    """Without a preprocessing mode in the manifest or the configuration, a bundle is resized."""
    import tarfile

    folder = tmp_path / "old"
    with tarfile.open(patchcore_bundle[0]) as archive:
        archive.extractall(folder, filter="data")
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("preprocessing", "tile_size", "tile_overlap", "memory_limit_mb"):
        manifest["config"].pop(key)
    manifest["preprocessing"].pop("mode")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    old = load_model(folder)
    assert old.describe()["preprocessing"] == "resize"
    for path in sorted((demo_data / "tiles/test").rglob("*.png"))[:4]:
        got, expected = (m.predict_bytes(path.read_bytes(), "tiles") for m in (old, detector))
        assert (got["raw_score"], got["regions"], got["heatmap_png_base64"]) == (
            expected["raw_score"], expected["regions"], expected["heatmap_png_base64"])
    shutil.rmtree(folder)

"""Evaluation on a stand-in model whose raw scores are known: which images, which scores, which metrics."""

import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from inference.calibration import Calibration
from inference.errors import DatasetError
from inference.vision.image_model import ImageModel, RawResult
from pipelines.vision.evaluation import evaluate_bundle

SIZE = 32
#: raw image score of every test image (the brightest pixel of the image, see `BrightnessScorer`)
GOOD = {"g0": 10, "g1": 20, "g2": 30, "g3": 180}
BAD = {"b0": 170, "b1": 190, "b2": 200, "b3": 210}
#: threshold 100, and a range so narrow that every score normalises to exactly 0 or 1
CALIBRATION = Calibration(threshold=100.0, low=99.0, high=101.0, method="f1", normal_count=4, anomalous_count=2)


class BrightnessScorer:
    """Raw map = the image's grey levels; raw score = its brightest pixel."""

    calibration = CALIBRATION

    def score(self, images, with_maps=True):
        results = []
        for image in images:
            amap = np.asarray(image.convert("L").resize((SIZE, SIZE), Image.Resampling.NEAREST), np.float32)
            results.append(RawResult(float(amap.max()), amap if with_maps else None))
        return results


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


@pytest.fixture
def dataset(tmp_path):
    """One class: 4 train/good, 4 test/good, 4 test/crack with masks; brightness encodes the raw scores."""
    root = tmp_path / "data"
    for i in range(4):
        _write(root / f"part/train/good/t{i}.png", np.full((SIZE, SIZE), 5 + i))
    for name, peak in GOOD.items():
        image = np.full((SIZE, SIZE), 5)
        image[20:24, 20:24] = peak  # a bright normal patch (g3 is a hard normal image)
        _write(root / f"part/test/good/{name}.png", image)
    for name, peak in BAD.items():
        image = np.full((SIZE, SIZE), 5)
        image[4:12, 4:12] = np.linspace(peak - 120, peak, 64).reshape(8, 8)  # a graded defect
        mask = np.zeros((SIZE, SIZE))
        mask[4:12, 4:12] = 255
        _write(root / f"part/test/crack/{name}.png", image)
        _write(root / f"part/ground_truth/crack/{name}_mask.png", mask)
    return root


def _detector(split: dict | None) -> ImageModel:
    entry = {"calibration": CALIBRATION.to_dict(), "threshold": CALIBRATION.threshold}
    if split is not None:
        entry["split"] = split
    manifest = {"kind": "patchcore", "modality": "image", "classes": {"part": entry},
                "preprocessing": {"image_size": SIZE}, "lineage": {"version": "t"}}
    return ImageModel(manifest, {"part": BrightnessScorer()})


def _keys(folder, names):
    return [f"test/{folder}/{n}.png" for n in names]


EVERY_TEST_IMAGE = {"fit": [f"train/good/t{i}.png" for i in range(3)], "calibration": ["train/good/t3.png"],
                    "validation": [], "evaluation": _keys("good", GOOD) + _keys("crack", BAD)}
HELD_OUT = {**EVERY_TEST_IMAGE, "validation": _keys("good", ["g0"]) + _keys("crack", ["b0"]),
            "evaluation": _keys("good", ["g1", "g2", "g3"]) + _keys("crack", ["b1", "b2", "b3"])}


def _truth(dataset, names):
    """Labels, raw scores, masks and raw maps of test images, as the stand-in model sees them."""
    labels, scores, masks, maps = [], [], [], []
    for name in names:
        folder = "crack" if name in BAD else "good"
        amap = np.asarray(Image.open(dataset / f"part/test/{folder}/{name}.png"), np.float32)
        mask_path = dataset / f"part/ground_truth/crack/{name}_mask.png"
        labels.append(int(name in BAD))
        scores.append(float(amap.max()))
        maps.append(amap)
        masks.append(np.asarray(Image.open(mask_path)) > 127 if mask_path.exists() else np.zeros(amap.shape, bool))
    return np.array(labels), np.array(scores), np.stack(masks), np.stack(maps)


def test_ranking_metrics_use_raw_scores_and_maps(dataset, tmp_path):
    report = evaluate_bundle(None, dataset, tmp_path / "out", detector=_detector(EVERY_TEST_IMAGE), plots=False, quiet=True)
    got = report["classes"]["part"]
    labels, scores, masks, maps = _truth(dataset, list(GOOD) + list(BAD))
    # raw: only the pair (b0 = 170, g3 = 180) is misordered; clipped, g3 would tie with every defect
    assert roc_auc_score(labels, scores) == pytest.approx(15 / 16)
    assert got["image_auroc"] == pytest.approx(15 / 16, abs=1e-12)
    assert got["pixel_auroc"] == pytest.approx(roc_auc_score(masks.reshape(-1), maps.reshape(-1)), abs=1e-12)
    from pipelines.metrics import aupro

    assert got["aupro"] == pytest.approx(aupro(masks, maps), abs=1e-12)
    # the threshold decides F1: g3 (180) is a false positive, every defect is found
    assert got["precision"] == pytest.approx(4 / 5) and got["recall"] == pytest.approx(1.0)
    assert got["accuracy"] == pytest.approx(7 / 8)


def test_without_a_recorded_split_heldout_evaluation_is_refused(dataset, tmp_path):
    """The threshold may have been chosen on test images: metrics on 'the whole test set' would leak."""
    with pytest.raises(DatasetError, match="split all"):
        evaluate_bundle(None, dataset, tmp_path / "out", detector=_detector(None), plots=False, quiet=True)


def test_heldout_evaluation_counts_only_the_evaluation_split(dataset, tmp_path):
    report = evaluate_bundle(None, dataset, tmp_path / "out", detector=_detector(HELD_OUT), plots=False, quiet=True)
    got = report["classes"]["part"]
    assert got["images"] == 6 and got["threshold_images"] == 0
    labels, scores, _, _ = _truth(dataset, ["g1", "g2", "g3", "b1", "b2", "b3"])
    assert got["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert report["split"]["name"] == "heldout"
    assert json.loads((tmp_path / "out/evaluation.json").read_text())["split"]["name"] == "heldout"


def test_split_all_evaluates_every_test_image_and_says_so(dataset, tmp_path):
    for detector in (_detector(HELD_OUT), _detector(None)):
        report = evaluate_bundle(None, dataset, tmp_path / "out", detector=detector, split="all", plots=False, quiet=True)
        got = report["classes"]["part"]
        assert got["images"] == 8 and got["anomalous"] == 4
        assert got["image_auroc"] == pytest.approx(15 / 16)
        assert report["split"]["name"] == "all"
        assert "threshold" in report["split"]["description"]
    # with the split known, the report counts the images the threshold was chosen on
    report = evaluate_bundle(None, dataset, tmp_path / "out", detector=_detector(HELD_OUT), split="all", plots=False, quiet=True)
    assert report["classes"]["part"]["threshold_images"] == 2


def test_an_unknown_split_is_refused(dataset, tmp_path):
    with pytest.raises(ValueError, match="heldout"):
        evaluate_bundle(None, dataset, tmp_path / "out", detector=_detector(HELD_OUT), split="test", plots=False, quiet=True)


def test_recorded_evaluation_images_that_are_gone_are_an_error(dataset, tmp_path):
    (dataset / "part/test/crack/b3.png").unlink()
    with pytest.raises(DatasetError, match="b3"):
        evaluate_bundle(None, dataset, tmp_path / "out", detector=_detector(HELD_OUT), plots=False, quiet=True)

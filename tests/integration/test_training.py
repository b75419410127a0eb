import json

import numpy as np
import pytest

from inference.model import load_model
from inference.kinds.patchcore.config import ModelConfig
from pipelines.vision.backbones import BackboneSource, resolve_backbone
from pipelines.vision.datasets import read_class
from pipelines.vision.evaluation import evaluate_bundle
from pipelines.vision.splits import split_class
from pipelines.vision.synthetic import generate
from pipelines.kinds.patchcore.training import build_extractor, load_images, train_bundle


def test_training_and_serving_compute_identical_features(patchcore_bundle, demo_data, small_config):
    """Same ONNX graph, same preprocessing: embeddings match bit for bit."""
    onnx_path, spec = resolve_backbone(BackboneSource("resnet18", "random"))
    training_extractor = build_extractor(onnx_path, spec, small_config)
    serving_extractor = load_model(patchcore_bundle[0]).model_for("tiles").extractor
    data = read_class(demo_data, "tiles")
    images, _ = load_images(data.test[:3], data, "load", quiet=True)
    trained, _ = training_extractor.embed(images)
    served, _ = serving_extractor.embed(images)
    assert np.array_equal(trained, served)


def test_calibration_never_uses_evaluation_images(patchcore_bundle, demo_data):
    manifest = patchcore_bundle[1].manifest
    for name, entry in manifest["classes"].items():
        split = entry["split"]
        assert not set(split["evaluation"]) & set(split["validation"])
        assert not set(split["fit"]) & set(split["calibration"])
        assert entry["calibration"]["method"] == "f1"  # labelled anomalies exist in validation
        expected = split_class(read_class(demo_data, name)).to_dict()
        assert {k: split[k] for k in expected} == expected


def test_evaluation_report_and_plots(patchcore_bundle, demo_data, tmp_path):
    report = evaluate_bundle(patchcore_bundle[0], demo_data, tmp_path, quiet=True)
    written = json.loads((tmp_path / "evaluation.json").read_text())
    assert written["mean"] == report["mean"]
    assert report["mean"]["image_auroc"] >= 0.9
    assert report["classes"]["tiles"]["pixel_auroc"] >= 0.9
    assert 0.0 <= report["classes"]["tiles"]["aupro"] <= 1.0
    assert set(written["binary_classification_metrics"]) >= {"image_auroc", "pixel_auroc", "aupro", "f1"}
    for name in ("tiles", "fabric"):
        for plot in ("roc", "histogram", "examples"):
            assert (tmp_path / f"{plot}_{name}.png").stat().st_size > 1000
        assert report["classes"][name]["images"] == len(patchcore_bundle[1].manifest["classes"][name]["split"]["evaluation"])


def test_normal_only_data_calibrates_on_a_quantile(tmp_path):
    import shutil

    data = generate(tmp_path / "d", ["fabric"], size=64, train_count=12, test_good_count=3, test_defect_count=1)
    for folder in (data / "fabric/test").iterdir():
        if folder.name != "good":
            shutil.rmtree(folder)
    shutil.rmtree(data / "fabric/ground_truth")
    report = train_bundle(data, ["fabric"], ModelConfig(image_size=64, coreset_ratio=0.1), BackboneSource("resnet18", "random"),
                          tmp_path / "m.tar.gz", quiet=True)
    assert report.manifest["classes"]["fabric"]["calibration"]["method"] == "normal_quantile"


@pytest.mark.slow
def test_softpatch_beats_patchcore_when_training_data_is_contaminated(tmp_path):
    """15 % of train/good carry recurring defects (the same tool mark at the same spot).

    PatchCore memorises those marks as normal; SoftPatch finds them as outliers among the patches
    at the same position and drops them, so its anomaly maps score the test defects better.
    """
    data = generate(tmp_path / "noisy", ["tiles", "fabric"], size=128, train_count=40, test_good_count=10,
                    test_defect_count=5, contamination=0.15, seed=5, contamination_defects=("hole", "scratch"),
                    defect_sites=[(0.3, 0.3), (0.7, 0.65)])
    reports = {}
    for kind in ("patchcore", "softpatch"):
        config = ModelConfig(kind=kind, image_size=128, coreset_ratio=0.05)
        train_bundle(data, ["tiles", "fabric"], config, BackboneSource("resnet18", "random"), tmp_path / f"{kind}.tar.gz", quiet=True)
        reports[kind] = evaluate_bundle(tmp_path / f"{kind}.tar.gz", data, tmp_path / kind, plots=False, quiet=True)["mean"]
    assert reports["softpatch"]["pixel_auroc"] > reports["patchcore"]["pixel_auroc"] + 0.03, reports
    assert reports["softpatch"]["aupro"] > reports["patchcore"]["aupro"], reports
    assert reports["softpatch"]["image_auroc"] >= 0.95, reports


def test_int8_backbone_trains_and_scores_like_fp32(demo_data, tmp_path, patchcore_bundle, small_config):
    report = train_bundle(demo_data, ["tiles"], small_config, BackboneSource("resnet18", "random"), tmp_path / "q.tar.gz",
                          quantize=True, quiet=True)
    assert report.manifest["backbone"]["precision"] == "int8"
    assert report.manifest["backbone"]["quantization"] == "qdq-u8s8-w7-percentile"
    int8 = evaluate_bundle(tmp_path / "q.tar.gz", demo_data, tmp_path / "q", plots=False, quiet=True)
    fp32 = evaluate_bundle(patchcore_bundle[0], demo_data, tmp_path / "f", ["tiles"], plots=False, quiet=True)
    assert int8["classes"]["tiles"]["image_auroc"] >= fp32["classes"]["tiles"]["image_auroc"] - 0.05


def _grey_twins(source, eight, twelve):
    """Two copies of an MVTec-layout folder in grey: 8-bit PNGs, and the same frames at 12 bits in
    16-bit PNGs without an sBIT chunk (as many industrial cameras write them)."""
    from PIL import Image

    for path in source.rglob("*.png"):
        for root in (eight, twelve):
            (root / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        if "ground_truth" in path.parts:
            for root in (eight, twelve):
                (root / path.relative_to(source)).write_bytes(path.read_bytes())
            continue
        grey = Image.open(path).convert("L")
        grey.save(eight / path.relative_to(source))
        twelve_bit = np.round(np.asarray(grey, np.float64) / 255 * 4095).astype(np.uint16)
        Image.fromarray(twelve_bit).save(twelve / path.relative_to(source))


def test_twelve_bit_frames_train_and_serve_like_their_eight_bit_originals(tmp_path):
    """The white level is learnt from the training frames, stored in the bundle and used again at serving."""
    source = generate(tmp_path / "colour", ["tiles"], size=64, train_count=12, test_good_count=3, test_defect_count=2, seed=3)
    eight, twelve = tmp_path / "eight", tmp_path / "twelve"
    _grey_twins(source, eight, twelve)
    config = ModelConfig(image_size=64, coreset_ratio=0.1)
    reports = {name: train_bundle(root, ["tiles"], config, BackboneSource("resnet18", "random"), tmp_path / f"{name}.tar.gz", quiet=True)
               for name, root in (("eight", eight), ("twelve", twelve))}
    intensity = reports["twelve"].manifest["classes"]["tiles"]["intensity"]
    assert intensity["white_level"] == 4095
    assert reports["eight"].manifest["classes"]["tiles"]["intensity"] is None
    assert (reports["twelve"].manifest["classes"]["tiles"]["calibration"]
            == reports["eight"].manifest["classes"]["tiles"]["calibration"])
    served = {name: load_model(tmp_path / f"{name}.tar.gz") for name in reports}
    for image in sorted((eight / "tiles/test").rglob("*.png")):
        twin = twelve / image.relative_to(eight)
        expected = served["eight"].predict_bytes(image.read_bytes(), "tiles", outputs=())
        got = served["twelve"].predict_bytes(twin.read_bytes(), "tiles", outputs=())
        assert got["raw_score"] == expected["raw_score"], image


def test_cli_and_evaluate_step_choose_the_split(patchcore_bundle, demo_data, tmp_path, capsys):
    from infra.cli import main as cli
    from pipelines.steps.evaluate import main as step

    bundle, report = patchcore_bundle
    every = {name: len(read_class(demo_data, name).test) for name in ("tiles", "fabric")}
    held = {name: len(report.manifest["classes"][name]["split"]["evaluation"]) for name in every}
    assert all(held[name] < every[name] for name in every)

    assert cli(["evaluate", "--data", str(demo_data), "--bundle", str(bundle), "--output", str(tmp_path / "all"),
                "--split", "all", "--quiet"]) == 0
    assert "split: all" in capsys.readouterr().out
    written = json.loads((tmp_path / "all/evaluation.json").read_text())
    assert written["split"]["name"] == "all"
    assert {name: m["images"] for name, m in written["classes"].items()} == every
    assert all(m["threshold_images"] == every[name] - held[name] for name, m in written["classes"].items())

    step(["--model", str(bundle), "--input", str(demo_data), "--output", str(tmp_path / "step")])
    written = json.loads((tmp_path / "step/evaluation.json").read_text())
    assert written["split"]["name"] == "heldout"
    assert {name: m["images"] for name, m in written["classes"].items()} == held
    step(["--model", str(bundle), "--input", str(demo_data), "--output", str(tmp_path / "step-all"), "--split", "all"])
    assert json.loads((tmp_path / "step-all/evaluation.json").read_text())["split"]["name"] == "all"

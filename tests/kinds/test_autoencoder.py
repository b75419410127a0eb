"""The `autoencoder` kind: trained with torch, exported to one ONNX graph per class, served through ONNX
Runtime. The scores training calibrated on are the scores the served bundle gives, to the last bit;
the reconstruction-error map is the heatmap; the same pipeline registers it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inference.calibration import calibrate
from inference.model import load_model

#: small and quick: the demo's defects are large, a 64 px level-1 network finds them in the level's
#: 20 epochs (with fewer, whether the tiles' holes stand out depends on the CPU's rounding)
SETTINGS = {"level": "1", "image_size": "64"}


@pytest.fixture(scope="module")
def trained(demo_data, tmp_path_factory):
    from pipelines.kinds import TrainingJob, train

    output = tmp_path_factory.mktemp("autoencoder") / "model.tar.gz"
    report = train(TrainingJob("autoencoder", demo_data, ["tiles", "fabric"], dict(SETTINGS), output,
                               lineage={"version": "ae-1"}, quiet=True))
    return output, report


def held_out(demo_data, manifest, name):
    """(normal, anomalous) files the class's threshold was chosen on, as the bundle recorded them."""
    split = manifest["classes"][name]["split"]
    keys = split["calibration"] + split["validation"]
    normal = [k for k in keys if k.split("/")[1] == "good"]
    anomalous = [k for k in keys if k.split("/")[1] != "good"]
    return [demo_data / name / k for k in normal], [demo_data / name / k for k in anomalous]


def test_served_scores_are_the_scores_training_calibrated_on(trained, demo_data):
    bundle, report = trained
    model = load_model(bundle)
    for name in ("tiles", "fabric"):
        entry = report.manifest["classes"][name]
        normal, anomalous = held_out(demo_data, report.manifest, name)
        assert normal and anomalous
        served_normal = [model.predict_bytes(p.read_bytes(), name, outputs=())["raw_score"] for p in normal]
        exact_normal = [r.raw_score for r in model.score_images([model.decode(p.read_bytes(), name) for p in normal], name, False)]
        exact_anomalous = [r.raw_score for r in model.score_images([model.decode(p.read_bytes(), name) for p in anomalous], name, False)]
        # the threshold training chose is the one these served scores give, exactly
        assert calibrate(exact_normal, exact_anomalous, 0.99).to_dict() == entry["calibration"]
        assert float(np.max(exact_normal)) == entry["score_stats"]["normal_max"]
        assert float(np.mean(exact_normal)) == entry["score_stats"]["normal_mean"]
        assert served_normal == [round(s, 6) for s in exact_normal]  # the answer's raw_score, through decoding
        assert entry["training"]["export_relative_error"] < 1e-3


def test_a_served_endpoint_gives_the_same_answer_as_the_bundle_in_process(trained, demo_data, tmp_path):
    import base64

    from inference.bundle import extract_bundle
    from tests.serving.conftest import http, serving

    bundle, _ = trained
    model = load_model(bundle)
    image = demo_data / "tiles/test/hole/001.png"
    local = model.predict_bytes(image.read_bytes(), "tiles")
    with serving(extract_bundle(bundle, tmp_path / "served"), tmp_path / "endpoint.log", workers=1) as url:
        status, remote = http("POST", url + "/invocations", {"class_name": "tiles",
                                                             "image_base64": base64.b64encode(image.read_bytes()).decode()})
    assert status == 200, remote
    for key in ("anomaly_score", "raw_score", "is_anomaly", "regions", "heatmap_png_base64"):
        assert remote[key] == local[key], key
    assert remote["model"] == {"kind": "autoencoder", "version": "ae-1"}


def test_the_reconstruction_error_map_is_the_heatmap_and_finds_the_defects(trained, demo_data, tmp_path):
    from pipelines.vision.evaluation import evaluate_bundle

    bundle, _ = trained
    model = load_model(bundle)
    result, normalised = model.predict_image_with_map(Image.open(demo_data / "tiles/test/hole/001.png").convert("RGB"), "tiles")
    assert normalised.shape == (64, 64)  # the error map at the network's resolution
    assert result["heatmap_png_base64"] and result["regions"] and result["is_anomaly"] is True
    mask = np.asarray(Image.open(demo_data / "tiles/ground_truth/hole/001_mask.png").convert("L").resize((64, 64))) > 127
    assert normalised[mask].mean() > normalised[~mask].mean()  # the defect is where the error is
    report = evaluate_bundle(bundle, demo_data, tmp_path / "evaluation", quiet=True)
    assert report["model"]["kind"] == "autoencoder"
    # through the serving path, on images that neither trained the network nor chose its threshold
    assert report["mean"]["image_auroc"] >= 0.8 and report["mean"]["pixel_auroc"] >= 0.8


def test_the_bundle_records_what_the_level_chose_and_how_it_sees_colour(trained):
    from inference.kinds.autoencoder.config import LEVELS

    _, report = trained
    config = report.manifest["config"]
    assert (config["level"], config["image_size"], config["epochs"]) == (1, 64, LEVELS[1].epochs)
    assert (config["base_channels"], config["latent_channels"]) == (LEVELS[1].base_channels, LEVELS[1].latent_channels)
    assert {entry["colour"] for entry in report.manifest["classes"].values()} == {"rgb"}  # the demo is in colour
    levels = [LEVELS[n] for n in sorted(LEVELS)]
    assert all(a.base_channels < b.base_channels and a.epochs < b.epochs for a, b in zip(levels, levels[1:]))


def test_grey_images_train_a_one_channel_network(tmp_path):
    from pipelines.kinds import TrainingJob, train

    rng = np.random.default_rng(0)
    for split, count in (("train/good", 12), ("test/good", 3), ("test/crack", 3)):
        folder = tmp_path / "cells" / split
        folder.mkdir(parents=True)
        for i in range(count):
            pixels = (100 + 20 * rng.standard_normal((96, 96))).clip(0, 255).astype(np.uint8)
            if "crack" in split:
                pixels[40:44, 10:80] = 10
            Image.fromarray(pixels, "L").save(folder / f"{i}.png")
    report = train(TrainingJob("autoencoder", tmp_path, ["cells"], {"level": "1", "image_size": "64", "epochs": "2"},
                               tmp_path / "model.tar.gz", quiet=True))
    assert report.manifest["classes"]["cells"]["colour"] == "grey"
    model = load_model(tmp_path / "model.tar.gz")
    assert model.predict_bytes((tmp_path / "cells/test/crack/0.png").read_bytes(), "cells")["heatmap_png_base64"]


@pytest.mark.parametrize("settings, message", [
    ({"level": "6"}, "level must be one of [1, 2, 3, 4, 5]"),
    ({"image_size": "100"}, "image_size must be a multiple of 32"),
    ({"epochs": "many"}, "epochs='many' is not a whole number"),
    ({"backbone": "resnet18"}, "autoencoder has no setting(s) ['backbone']"),
])
def test_settings_that_cannot_be_used_are_refused_with_the_reason(demo_data, tmp_path, capsys, settings, message):
    from infra.cli import main

    argv = ["train", "--data", str(demo_data), "--classes", "tiles", "--model", "autoencoder", "--output",
            str(tmp_path / "model.tar.gz"), "--quiet"]
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "model.tar.gz").exists()


def test_the_autoencoder_serves_without_torch(trained):
    import subprocess
    import sys

    bundle, _ = trained
    script = (
        "import sys\n"
        "for name in ('torch', 'onnx', 'sklearn', 'pipelines'): sys.modules[name] = None\n"
        "from PIL import Image\n"
        "from inference.model import load_model\n"
        f"model = load_model({str(bundle)!r})\n"
        "print(model.predict_image(Image.new('RGB', (200, 150), (90, 60, 30)), 'tiles')['model']['kind'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "autoencoder"


@pytest.mark.slow
def test_the_pipeline_trains_evaluates_and_registers_an_autoencoder(demo_data, tmp_path):
    from pipelines.local_runner import LocalPipeline, RunParameters
    from pipelines.registry import APPROVED, LocalRegistry

    pipeline = LocalPipeline(tmp_path / "store", echo=lambda *a: None)
    record = pipeline.run(RunParameters(str(demo_data), ("tiles",), "autoencoder", dict(SETTINGS), gate=0.5))
    assert record["status"] == "Succeeded" and record["registered_version"] == "ivadas-training-autoencoder/1"
    assert [s["name"] for s in record["steps"]] == ["Preprocess", "Train", "Evaluate", "QualityGate", "Register"]
    registry = LocalRegistry(tmp_path / "store")
    version = registry.set_status("ivadas-training-autoencoder", 1, APPROVED, "reviewed")
    assert version.metadata["model_kind"] == "autoencoder" and version.metadata["level"] == "1"
    assert version.metrics["mean"]["image_auroc"] >= 0.5
    assert load_model(version.model_url).kind == "autoencoder"


def test_the_quality_bench_trains_the_autoencoder_rows_on_the_suites_draw(demo_data, tmp_path):
    from inference.kinds.patchcore.config import DEFAULT_CONFIG
    from pipelines.bench import QUALITY_VARIANTS, _train_and_evaluate

    label, overrides, int8 = next(v for v in QUALITY_VARIANTS if v[1].get("kind") == "autoencoder")
    assert (overrides["level"], overrides["image_size"], int8) == (3, 128, False)
    # as the suite builds it: PatchCore's defaults, the suite's image size and seed, then the variant's own
    config = {**DEFAULT_CONFIG.to_dict(), "image_size": 224, "seed": 1, **overrides}
    config.update(image_size=64, level=1, epochs=2)  # small, for the test
    run = _train_and_evaluate(str(demo_data), ["tiles"], config, "no backbone is read", False, str(tmp_path))
    assert set(run["evaluations"]) == {"heldout", "all"} and run["timings"]["tiles"]["total_s"] > 0
    assert run["evaluations"]["heldout"]["model"]["kind"] == "autoencoder"
    assert run["evaluations"]["all"]["classes"]["tiles"]["image_auroc"] is not None
    manifest = load_model(tmp_path / "autoencoder-level1-64px-seed1.tar.gz").manifest
    assert (manifest["config"]["seed"], manifest["config"]["epochs"]) == (1, 2)

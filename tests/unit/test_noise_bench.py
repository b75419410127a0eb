"""`ivadas bench --suite noise`: each rule removes what it says, is measured against the moved anomalies it
should find, and the suite runs end to end from the command line."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from inference.kinds.patchcore.config import ModelConfig
from inference.kinds.patchcore.config import DEFAULT_CONFIG
from pipelines.vision.noise_bench import MOVED_PREFIX, RULES, measure_rule

IMAGES, POSITIONS, DIM, MOVED = 40, 16, 8, 4


@dataclass
class Sample:
    path: Path
    is_anomaly: bool = False


def _embeddings(rng, count, defect=False, recurring=False):
    """Random patches; `recurring`: normal appearance recurs from part to part instead (each position
    shows one of three looks, with a little noise), as on real parts."""
    images = rng.normal(size=(count, POSITIONS, DIM)).astype(np.float32)
    if recurring:
        looks = np.random.default_rng(99).normal(size=(3, POSITIONS, DIM)).astype(np.float32) * 3
        images = looks[rng.integers(3, size=count)] + images * 0.05
    if defect:  # every defect a different, far-away patch
        for i in range(count):
            images[i, rng.integers(POSITIONS)] += rng.normal(size=DIM).astype(np.float32) * 4 + 8
    return images


def _contaminated(recurring):
    rng = np.random.default_rng(0)
    fit = np.concatenate([_embeddings(rng, IMAGES - MOVED, recurring=recurring),
                          _embeddings(rng, MOVED, defect=True, recurring=recurring)])
    samples = [Sample(Path(f"good-{i}.png")) for i in range(IMAGES - MOVED)]
    samples += [Sample(Path(f"{MOVED_PREFIX}crack-{i}.png"), True) for i in range(MOVED)]
    tests = np.concatenate([_embeddings(rng, 10, recurring=recurring), _embeddings(rng, 10, defect=True, recurring=recurring)])
    test_samples = [Sample(Path(f"t{i}.png"), i >= 10) for i in range(20)]
    return fit, samples, {"evaluation": (tests, test_samples)}


@pytest.fixture(scope="module")
def contaminated():
    return _contaminated(recurring=False)


@pytest.fixture(scope="module")
def recurring():
    return _contaminated(recurring=True)


def _rule(label_start):
    return next(rule for label, (rule, _) in RULES.items() if label.startswith(label_start))


CONFIG = ModelConfig(kind="patchcore", coreset_ratio=0.25, coreset_projection_dim=8, seed=0)


def test_the_oracle_leaves_out_exactly_the_moved_images(contaminated):
    fit, samples, parts = contaminated
    row = measure_rule(_rule("oracle"), fit, samples, parts, CONFIG)
    assert row["removed"] == pytest.approx(MOVED / IMAGES)
    assert row["moved_share_of_removed"] == 1.0 and row["moved_rows_removed"] == 1.0
    assert row["detection_auroc"] == 1.0


def test_softpatch_defaults_find_the_moved_images_and_leave_out_their_share(recurring):
    fit, samples, parts = recurring
    from dataclasses import replace

    from inference.kinds.patchcore.model import image_noise_scores
    from inference.kinds.patchcore.patch_store import store_of

    row = measure_rule(_rule("SoftPatch defaults"), fit, samples, parts, CONFIG)
    assert row["detection_auroc"] == 1.0  # each moved defect is unlike any other image's patches
    scores = image_noise_scores(store_of(fit, CONFIG.coreset_projection_dim, CONFIG.seed), replace(CONFIG, kind="softpatch"))
    share = int(DEFAULT_CONFIG.noise_images * IMAGES)
    assert MOVED < np.count_nonzero(scores) < share  # a few normal images have something of their own, most not
    assert row["removed"] == np.count_nonzero(scores) / IMAGES  # the share, but never an image scoring 0
    assert row["moved_rows_removed"] == 1.0


def test_the_former_two_fold_filter_is_measured_beside_the_defaults(contaminated):
    fit, samples, parts = contaminated
    row = measure_rule(_rule("SoftPatch, two-fold"), fit, samples, parts, CONFIG)
    assert row["detection_auroc"] == 1.0  # each moved defect is unlike anything in the other half
    assert row["moved_rows_removed"] == 1.0 and row["evaluation"] is not None


def test_softpatch_former_defaults_remove_their_fixed_fraction_with_soft_weights(contaminated):
    fit, samples, parts = contaminated
    row = measure_rule(_rule("SoftPatch's former"), fit, samples, parts, CONFIG)
    assert row["removed"] == pytest.approx(0.15, abs=1 / (IMAGES * POSITIONS))
    assert row["detection_auroc"] is None and row["evaluation"] is not None


def test_leaving_the_moved_anomalies_out_gives_a_better_bank_than_keeping_them(contaminated):
    fit, samples, parts = contaminated
    kept = measure_rule(_rule("PatchCore"), fit, samples, parts, CONFIG)
    left_out = measure_rule(_rule("oracle"), fit, samples, parts, CONFIG)
    assert kept["removed"] == 0.0 and kept["moved_share_of_removed"] is None
    assert left_out["evaluation"] >= kept["evaluation"]


def test_the_lof_fence_removes_the_planted_patches_among_few_others(contaminated):
    fit, samples, parts = contaminated
    row = measure_rule(_rule("LOF"), fit, samples, parts, CONFIG)
    assert 0 < row["removed"] < 0.05
    assert row["moved_rows_removed"] >= 1 / POSITIONS  # each moved image's one defect patch, at least
    assert row["moved_share_of_removed"] > 4 * MOVED / IMAGES  # the moved images are a tenth of the data


def test_the_suite_runs_from_the_command_line(demo_data, backbone, tmp_path):
    from infra.cli import main

    output = tmp_path / "noise.md"
    code = main(["bench", "--suite", "noise", "--data", str(demo_data), "--classes", "tiles", "--onnx-backbone",
                 str(backbone[0]), "--quality-image-size", "64", "--seeds", "0", "--contamination", "0,0.34",
                 "--train-limit", "20", "--workdir", str(tmp_path / "work"), "--output", str(output)])
    assert code == 0
    text = output.read_text()
    assert "## What the noise filters find" in text and "--suite noise" in text
    for label in RULES:
        assert f"| 34% | {label} |" in text
    assert "| 0% | oracle" not in text  # nothing was moved: no oracle


def test_cached_embeddings_are_named_after_what_made_them(backbone, tmp_path):
    from pipelines.kinds.patchcore.training import build_extractor
    from pipelines.vision.noise_bench import EmbeddingCache

    def key(**settings):
        return EmbeddingCache(tmp_path, build_extractor(*backbone, ModelConfig(**settings))).key

    assert key(image_size=64) == key(image_size=64)
    assert len({key(image_size=64), key(image_size=96), key(image_size=64, patch_size=1)}) == 3

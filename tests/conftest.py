"""Shared fixtures: a small synthetic dataset, a random-weight backbone and trained bundles.

Everything is made here, offline: no download, no ../shared. Session-scoped so the suite trains
each model kind once.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
TEST_IMAGE_SIZE = 160


@pytest.fixture(scope="session", autouse=True)
def isolated_caches(tmp_path_factory):
    """Backbone exports and the workspace go to a temporary folder, never the user's cache."""
    root = tmp_path_factory.mktemp("ivadas-cache")
    previous = {key: os.environ.get(key) for key in ("IVADAS_CACHE", "IVADAS_HOME")}
    os.environ["IVADAS_CACHE"] = str(root / "cache")
    os.environ["IVADAS_HOME"] = str(root / "home")
    yield root
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    from pipelines.vision.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "demo", ["tiles", "fabric"], size=160, train_count=30,
                    test_good_count=10, test_defect_count=3, seed=1)


@pytest.fixture(scope="session")
def backbone():
    from pipelines.vision.backbones import BackboneSource, resolve_backbone

    return resolve_backbone(BackboneSource("resnet18", "random"))


@pytest.fixture(scope="session")
def small_config():
    from inference.kinds.patchcore.config import ModelConfig

    return ModelConfig(image_size=TEST_IMAGE_SIZE, coreset_ratio=0.05)


def _train(demo_data, tmp_path_factory, config, kind):
    from dataclasses import replace

    from pipelines.vision.backbones import BackboneSource
    from pipelines.kinds.patchcore.training import train_bundle

    output = tmp_path_factory.mktemp(f"bundle-{kind}") / "model.tar.gz"
    report = train_bundle(demo_data, ["tiles", "fabric"], replace(config, kind=kind), BackboneSource("resnet18", "random"),
                          output, lineage={"version": "test-1"}, quiet=True)
    return output, report


@pytest.fixture(scope="session")
def patchcore_bundle(demo_data, tmp_path_factory, small_config):
    return _train(demo_data, tmp_path_factory, small_config, "patchcore")


@pytest.fixture(scope="session")
def softpatch_bundle(demo_data, tmp_path_factory, small_config):
    return _train(demo_data, tmp_path_factory, small_config, "softpatch")


@pytest.fixture(scope="session")
def detector(patchcore_bundle):
    from inference.model import load_model

    return load_model(patchcore_bundle[0])


def png_bytes_of(path: Path) -> bytes:
    return Path(path).read_bytes()


requires_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared (real data and backbone) is not present")


SENSOR_ASSETS = ("pump-1", "pump-2")


@pytest.fixture(scope="session")
def sensor_data(tmp_path_factory) -> Path:
    """Two pumps, 1,200 readings each at 2.5 min (two days), labelled faults in the second half."""
    from pipelines.sensors.synthetic import generate

    return generate(tmp_path_factory.mktemp("sensors") / "demo", SENSOR_ASSETS, rows=1200, seed=1)


@pytest.fixture(scope="session")
def sensor_bundle(sensor_data, tmp_path_factory):
    """A PCA sensor bundle (the quickest sensor kind to train) of both pumps."""
    from pipelines.kinds import TrainingJob, train

    output = tmp_path_factory.mktemp("bundle-pca") / "model.tar.gz"
    report = train(TrainingJob("pca", sensor_data, list(SENSOR_ASSETS), {}, output, lineage={"version": "sensors-1"}, quiet=True))
    return output, report

"""Training memory is bounded by a setting, and the setting never changes the model."""

import numpy as np
import pytest

import inference.kinds.patchcore.model as model_module
from inference.kinds.patchcore.config import ModelConfig
from inference.kinds.patchcore.sampler import FileRows
from inference.model import load_model
from pipelines.kinds.patchcore.training import train_bundle
from pipelines.vision.backbones import BackboneSource

from tests.conftest import TEST_IMAGE_SIZE


def _bank(bundle):
    bank = load_model(bundle).model_for("tiles").model.bank
    return bank.embeddings, bank.weights


PAPERS_FILTER = {"noise_images": 0.0, "noise_fraction": 0.15, "soft_weights": True}


@pytest.mark.parametrize("settings", [{"kind": "patchcore"}, {"kind": "softpatch"},
                                      {"kind": "softpatch", "noise_method": "gaussian", **PAPERS_FILTER},
                                      {"kind": "softpatch", "noise_method": "lof", **PAPERS_FILTER}],
                         ids=["patchcore", "softpatch", "softpatch-gaussian", "softpatch-lof"])
def test_a_tiny_memory_limit_builds_the_same_bank_bit_for_bit(settings, demo_data, tmp_path, monkeypatch, tmpdir):
    """1 MB for 10,800 training patches: the embeddings and their projection stream to files, the
    coreset reads its points back from there in blocks, SoftPatch reads a few positions at a time."""
    monkeypatch.setenv("IVADAS_SCRATCH", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    file_reads, chunks = [], []
    real_slice, real_take, real_factors = FileRows.slice, FileRows.take, model_module.outlier_factors

    def counting_slice(self, start, stop):
        file_reads.append(stop - start)
        return real_slice(self, start, stop)

    def counting_take(self, indices):
        file_reads.append(len(indices))
        return real_take(self, indices)

    def recording_factors(read, images, positions, method, k, chunk, progress=None):
        chunks.append(chunk)
        return real_factors(read, images, positions, method, k, chunk, progress)

    monkeypatch.setattr(FileRows, "slice", counting_slice)
    monkeypatch.setattr(FileRows, "take", counting_take)
    monkeypatch.setattr(model_module, "outlier_factors", recording_factors)
    banks = {}
    for limit in (0, 1):
        config = ModelConfig(image_size=TEST_IMAGE_SIZE, coreset_ratio=0.05, memory_limit_mb=limit, **settings)
        output = tmp_path / f"limit-{limit}.tar.gz"
        train_bundle(demo_data, ["tiles"], config, BackboneSource("resnet18", "random"), output, quiet=True)
        banks[limit] = _bank(output)
        if limit == 0:
            assert not file_reads  # no limit: everything in RAM
    assert sum(file_reads) >= 0.85 * 10_800  # every candidate patch read back from the file at least once
    if settings.get("soft_weights"):  # the paper's filter scores every position across the images
        assert chunks[0] == 64 and 1 <= chunks[1] < 20  # a few positions at a time under the limit
    assert list((tmp_path / "scratch").iterdir()) == []  # the streamed files are gone
    assert banks[0][0].shape == (540, 384)
    assert np.array_equal(banks[0][0], banks[1][0])
    assert np.array_equal(banks[0][1], banks[1][1])

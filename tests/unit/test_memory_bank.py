import numpy as np
import pytest

from inference.kinds.patchcore.config import ModelConfig
from inference.kinds.patchcore.memory_bank import MemoryBank
from inference.kinds.patchcore.model import ClassModel


def _clustered(rng, count, dim, centres):
    """Points around a few centres: a bank whose subspace guesses are often not the true nearest."""
    labels = rng.integers(len(centres), size=count)
    return (centres[labels] + rng.normal(scale=0.6, size=(count, dim))).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_farthest_query_is_exactly_the_brute_force_one(seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(12, 256))
    bank = MemoryBank(_clustered(rng, 600, 256, centres))
    queries = _clustered(rng, 300, 256, centres)
    queries[17] += rng.normal(scale=1.5, size=256).astype(np.float32)  # one clearly anomalous patch
    distances = np.linalg.norm(queries[:, None, :] - bank.embeddings[None, :, :], axis=2)
    nearest = distances.min(axis=1)
    row, distance, entry = bank.farthest_query(queries)
    assert row == int(np.argmax(nearest))
    assert distance == pytest.approx(nearest.max(), rel=1e-5)
    assert entry == int(np.argmin(distances[row]))


def test_farthest_query_finds_the_one_distant_patch_among_near_copies():
    """Most patches sit on a bank entry; pruning must not skip the single one that does not."""
    rng = np.random.default_rng(3)
    bank = MemoryBank(rng.normal(size=(400, 200)).astype(np.float32))
    queries = bank.embeddings[:50] + rng.normal(scale=0.05, size=(50, 200)).astype(np.float32)
    queries[40] = bank.embeddings[7] + rng.normal(scale=0.9, size=200).astype(np.float32)
    row, distance, _ = bank.farthest_query(queries)
    brute = np.linalg.norm(queries[:, None] - bank.embeddings[None], axis=2).min(axis=1)
    assert row == 40 and distance == pytest.approx(brute[40], rel=1e-5)


def test_verdict_only_score_equals_the_full_score():
    rng = np.random.default_rng(4)
    centres = rng.normal(scale=2.0, size=(8, 192))
    bank = MemoryBank(_clustered(rng, 500, 192, centres))
    model = ClassModel(bank, ModelConfig(image_size=64), (8, 8))
    for _ in range(5):
        patches = _clustered(rng, 64, 192, centres)
        full = model.score(patches, with_map=True)
        verdict = model.score(patches, with_map=False)
        assert verdict.raw_map is None and full.raw_map.shape == (64, 64)
        assert verdict.raw_score == pytest.approx(full.raw_score, rel=1e-5)

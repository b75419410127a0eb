import itertools

import numpy as np
import pytest

from inference.kinds.patchcore.sampler import coverage_radius, greedy_coreset, random_projection


def optimal_radius(points: np.ndarray, k: int) -> float:
    return min(coverage_radius(points, np.array(c)) for c in itertools.combinations(range(len(points)), k))


@pytest.mark.parametrize("seed", range(5))
def test_greedy_coreset_is_a_2_approximation_of_k_center(seed):
    points = np.random.default_rng(seed).normal(size=(12, 5)).astype(np.float32)
    chosen = greedy_coreset(points, ratio=3 / 12, projection_dim=128, seed=seed)  # no projection: dim 5 < 128
    assert len(chosen) == 3
    assert coverage_radius(points, chosen) <= 2 * optimal_radius(points, 3) + 1e-6


def test_each_greedy_step_takes_the_farthest_point():
    points = np.array([[0.0], [1.0], [10.0], [4.0], [6.0]], dtype=np.float32)
    chosen = greedy_coreset(points, ratio=3 / 5, seed=0)
    first = chosen[0]
    distances = np.abs(points[:, 0] - points[first, 0])
    assert chosen[1] == int(np.argmax(distances))
    assert len(set(chosen.tolist())) == 3


def test_coreset_size_ratio_and_eligibility():
    points = np.random.default_rng(0).normal(size=(1000, 16)).astype(np.float32)
    eligible = np.zeros(1000, bool)
    eligible[::2] = True
    chosen = greedy_coreset(points, ratio=0.1, seed=0, eligible=eligible)
    assert len(chosen) == 100  # the ratio counts every row, not only the eligible ones
    assert eligible[chosen].all()
    assert len(np.unique(chosen)) == 100
    assert len(greedy_coreset(points, ratio=0.9, seed=0, eligible=eligible)) == 500  # capped by the eligible


def test_coreset_with_projection_still_covers_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=20, size=(8, 256))
    points = np.concatenate([c + rng.normal(size=(100, 256)) for c in centres]).astype(np.float32)
    chosen = greedy_coreset(points, ratio=8 / 800, projection_dim=32, seed=0)
    assert sorted(set((chosen // 100).tolist())) == list(range(8))  # one point from every cluster


def test_full_ratio_keeps_everything_and_empty_is_an_error():
    points = np.ones((10, 4), np.float32)
    assert len(greedy_coreset(points, ratio=1.0)) == 10
    with pytest.raises(ValueError, match="no patches"):
        greedy_coreset(points, ratio=0.5, eligible=np.zeros(10, bool))


def test_random_projection_preserves_distances_roughly():
    points = np.random.default_rng(1).normal(size=(50, 1024)).astype(np.float32)
    projected = random_projection(points, 128, seed=0)
    original = np.linalg.norm(points[0] - points[1:], axis=1)
    reduced = np.linalg.norm(projected[0] - projected[1:], axis=1)
    assert np.allclose(reduced / original, 1.0, atol=0.25)

import itertools

import numpy as np
import pytest

from inference.kinds.patchcore.sampler import (ArrayRows, FileRows, coverage_radius, greedy_coreset, greedy_k_center,
                                             random_projection, select_coreset)


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


def textbook_greedy(points: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Greedy k-center as the paper writes it: every point measured against every new centre."""
    start = int(np.random.default_rng(seed).integers(len(points)))
    chosen = [start]
    nearest = np.linalg.norm(points - points[start], axis=1)
    for _ in range(1, count):
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return np.array(chosen)


@pytest.mark.parametrize("seed", range(3))
def test_lazy_blocks_choose_the_textbook_points(seed):
    """Several blocks of rows, most of them measured lazily: the same points in the same order."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(40, 12))
    points = (centres[rng.integers(40, size=9000)] + rng.normal(size=(9000, 12))).astype(np.float64)
    chosen = greedy_k_center(ArrayRows(points.astype(np.float32)), 120, seed)
    assert np.array_equal(chosen, textbook_greedy(points, 120, seed))


def test_rows_from_a_file_choose_bit_for_bit_what_rows_in_ram_choose(tmp_path):
    rng = np.random.default_rng(4)
    points = rng.normal(size=(7000, 24)).astype(np.float32)
    eligible = rng.random(7000) > 0.2
    points.tofile(tmp_path / "rows.f32")
    in_ram = select_coreset(ArrayRows(points), 0.02, seed=1, eligible=eligible)
    rows = FileRows(tmp_path / "rows.f32", 24, resident_bytes=1 << 16)  # pages handed back every 64 KB
    try:
        from_file = select_coreset(rows, 0.02, seed=1, eligible=eligible)
    finally:
        rows.close()
    assert np.array_equal(in_ram, from_file)
    assert len(in_ram) == 140 and eligible[in_ram].all()

import numpy as np
import pytest
from sklearn.neighbors import LocalOutlierFactor

from inference.kinds.softpatch.noise import (POSITION_CHUNK, ROW_BLOCK, noise_mask_and_weights, outlier_factors, patch_outlier_scores,
                                            position_outlier_factors, positions_per_chunk)


def test_lof_matches_scikit_learn_per_position():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(30, 4, 8)).astype(np.float32)  # 30 images, 4 positions, dim 8
    ours = position_outlier_factors(embeddings, "lof", k=5, projection_dim=128)
    for position in range(4):
        reference = LocalOutlierFactor(n_neighbors=5).fit(embeddings[:, position, :].astype(np.float64))
        assert np.allclose(ours[:, position], -reference.negative_outlier_factor_, rtol=1e-4)


@pytest.mark.parametrize("method", ["lof", "gaussian", "nearest"])
def test_planted_noise_is_scored_highest_and_filtered(method):
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(40, 6, 8)).astype(np.float32)
    embeddings[3, 2] += 12.0  # a defect in "good" image 3 at position 2
    embeddings[17, 5] -= 12.0
    scores = patch_outlier_scores(embeddings, method, k=6)
    assert scores.shape == (40, 6)
    top_two = set(np.argsort(scores.reshape(-1))[-2:].tolist())
    assert top_two == {3 * 6 + 2, 17 * 6 + 5}
    keep, weights = noise_mask_and_weights(scores, noise_fraction=0.01)
    assert not keep[3 * 6 + 2] and not keep[17 * 6 + 5]
    assert keep.sum() == pytest.approx(240 * 0.99, abs=1)
    assert (weights >= 0).all()


def test_zero_noise_fraction_keeps_everything():
    keep, _ = noise_mask_and_weights(np.random.default_rng(0).random((5, 5)), 0.0)
    assert keep.all()


@pytest.mark.parametrize("method", ["lof", "gaussian", "nearest"])
def test_an_image_unusual_everywhere_is_a_normal_mode_not_noise(method):
    """A defect stands out from its own image; an image unlike the others at every position
    (other lighting, other batch) is not filtered in its place."""
    rng = np.random.default_rng(2)
    embeddings = rng.normal(size=(40, 16, 8)).astype(np.float32)
    embeddings[5] += 3.0  # image 5 differs everywhere
    embeddings[9, 4] += 12.0  # a defect in image 9 at position 4
    scores = patch_outlier_scores(embeddings, method, k=6)
    keep, _ = noise_mask_and_weights(scores, noise_fraction=0.02)
    assert not keep[9 * 16 + 4]
    assert keep.reshape(40, 16)[5].mean() > 0.9
    raw = position_outlier_factors(embeddings, method, k=6)
    assert raw[5].mean() > np.median(raw)  # what the image median corrects


@pytest.mark.parametrize("method", ["lof", "gaussian", "nearest"])
def test_factors_do_not_depend_on_how_many_positions_are_read_at_once(method):
    rng = np.random.default_rng(3)
    projected = rng.normal(size=(ROW_BLOCK + 37, 10, 6)).astype(np.float32)  # more images than a row block
    reads = []

    def read(start, stop):
        reads.append(stop - start)
        return projected[:, start:stop]

    whole = outlier_factors(read, *projected.shape[:2], method, k=4, positions_per_chunk=10)
    one_by_one = outlier_factors(read, *projected.shape[:2], method, k=4, positions_per_chunk=1)
    assert reads == [10] + [1] * 10
    assert np.array_equal(whole, one_by_one)


def test_positions_per_chunk_fit_the_budget():
    per_position = 5000 * 128 * 8 * 3 + 3 * 128 * 128 * 8  # patches, two working copies, covariance and inverse
    assert positions_per_chunk(5000, 128, "gaussian", 40 * per_position) == 40
    assert positions_per_chunk(5000, 128, "gaussian", 1 << 34) == POSITION_CHUNK  # never more than without a limit
    assert positions_per_chunk(5000, 128, "gaussian", 1) == 1  # never less than one position
    assert positions_per_chunk(200, 128, "lof", 64 << 20) > positions_per_chunk(5000, 128, "lof", 64 << 20)

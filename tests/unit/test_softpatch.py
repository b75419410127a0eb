from dataclasses import replace

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


def _with_defect_images(images=30, positions=9, dim=8, defects=(4, 21), seed=5):
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(images, positions, dim)).astype(np.float32)
    for image, position in zip(defects, (2, 7)):  # each defect unlike any other patch, and unlike the other
        embeddings[image, position] += rng.normal(size=dim).astype(np.float32) * 3 + 10 * (1 + image % 2)
    return embeddings


def _config(**settings):
    from inference.kinds.patchcore.config import ModelConfig

    return ModelConfig(**{"kind": "softpatch", "coreset_ratio": 0.2, "coreset_projection_dim": 8, **settings})


def _with_recurring_normals(images=30, positions=9, dim=8, defects=(4, 21), seed=5):
    """Normal appearance recurs from part to part: each position shows one of three looks, with a little
    noise; each defect is unlike anything else."""
    rng = np.random.default_rng(seed)
    looks = rng.normal(size=(3, positions, dim)).astype(np.float32) * 3
    embeddings = looks[rng.integers(3, size=images)] + rng.normal(size=(images, positions, dim)).astype(np.float32) * 0.05
    for image, position in zip(defects, (2, 7)):
        embeddings[image, position] += rng.normal(size=dim).astype(np.float32) * 3 + 10 * (1 + image % 2)
    return embeddings


def test_images_the_other_half_finds_unlike_it_score_highest():
    from inference.kinds.patchcore.model import image_noise_scores
    from inference.kinds.patchcore.patch_store import store_of

    embeddings = _with_defect_images()
    scores = image_noise_scores(store_of(embeddings, 8, 0), _config(noise_image_rule="two_fold"))
    assert set(np.argsort(-scores)[:2].tolist()) == {4, 21}
    again = image_noise_scores(store_of(embeddings, 8, 0), _config(noise_image_rule="two_fold"))
    assert np.array_equal(scores, again)  # the halves are drawn with the seed


def test_images_with_patches_no_other_image_shares_score_highest():
    from inference.kinds.patchcore.model import image_noise_scores
    from inference.kinds.patchcore.patch_store import store_of

    scores = image_noise_scores(store_of(_with_recurring_normals(), 8, 0), _config(noise_image_rule="support"))
    assert scores.shape == (30,)
    assert np.flatnonzero(scores).tolist() == [4, 21]  # the defects' cells are their own; every look is shared
    assert scores[21] > scores[4]  # the farther defect (see `_with_recurring_normals`)


def test_cell_support_counts_the_images_that_reach_each_cell():
    from inference.kinds.softpatch.noise import cell_support

    # three images of four patches; cell 0 reached by all, cell 1 by images 0 and 1, cell 2 by image 2 alone
    cell_of_row = np.array([0, 0, 1, 1, 0, 1, 1, 1, 0, 2, 2, 0])
    assert cell_support(cell_of_row, np.repeat([0, 1, 2], 4), 3, 4).tolist() == [3, 2, 1, 0]


def test_an_image_scores_as_its_worst_view_by_the_mean_excess_of_its_patches():
    from inference.kinds.softpatch.noise import unshared_image_scores

    excess = np.array([0, 0, 0, 0,  0, 0, 0, 4.0,  0, 0, 0, 0])  # three views of four patches, two of image 1
    scores = unshared_image_scores(excess, 4, np.array([0, 1, 1]), 2)
    assert scores.tolist() == [0.0, 1.0]  # image 1: its worst view's mean (4 / 4), not the mean of its views (0.5)


@pytest.mark.parametrize("settings", [{"noise_support": 1}, {"noise_image_rule": "nearest"}])
def test_an_unknown_image_rule_or_a_support_below_two_is_refused(settings):
    with pytest.raises(ValueError, match=next(iter(settings))):
        _config(**settings)


def test_images_to_keep_leaves_out_the_highest_scores_of_their_share():
    from inference.kinds.patchcore.model import images_to_keep

    scores = np.array([0.1, 0.9, 0.3, 0.8, 0.2, 0.5, 0.4, 0.6, 0.7, 0.0])
    assert np.flatnonzero(~images_to_keep(scores, 0.2)).tolist() == [1, 3]
    assert images_to_keep(scores, 0.05).all()  # less than one image of ten: none left out
    # an image with nothing unlike the others (score 0) is never left out, whatever the share
    assert np.flatnonzero(~images_to_keep(np.array([0.0, 0.3, 0.0, 0.0, 0.0]), 0.4)).tolist() == [1]
    assert images_to_keep(np.zeros(10), 0.2).all()


def test_a_support_no_class_reaches_leaves_nothing_out():
    """With fewer images than `noise_support`, no cell is shared: no image has anything to be judged by."""
    from inference.kinds.patchcore.model import noise_filter
    from inference.kinds.patchcore.patch_store import store_of

    keep, _ = noise_filter(store_of(_with_recurring_normals(images=10, defects=(4,)), 8, 0),
                           _config(noise_images=0.2, noise_support=20))
    assert keep.all()


def test_softpatch_defaults_leave_out_the_defect_images_and_keep_no_weights():
    from inference.kinds.patchcore.model import noise_filter
    from inference.kinds.patchcore.patch_store import store_of

    embeddings = _with_defect_images()
    keep, weights = noise_filter(store_of(embeddings, 8, 0), _config(noise_images=0.1, noise_image_rule="two_fold"))
    kept_images = keep.reshape(30, 9).all(axis=1)  # 3 of 30 images left out
    assert keep.reshape(30, 9).all(axis=1).tolist() == keep.reshape(30, 9).any(axis=1).tolist()  # whole images
    assert not kept_images[4] and not kept_images[21] and kept_images.sum() == 27
    assert weights is None


def test_the_papers_filter_can_still_be_asked_for():
    from inference.kinds.patchcore.model import noise_filter
    from inference.kinds.patchcore.patch_store import store_of

    store = store_of(_with_defect_images(), 8, 0)
    keep, weights = noise_filter(store, _config(noise_images=0.0, noise_method="lof", noise_fraction=0.02, soft_weights=True))
    assert keep.sum() == pytest.approx(270 * 0.98, abs=1) and not keep[4 * 9 + 2] and not keep[21 * 9 + 7]
    assert weights.shape == (270,)
    keep, weights = noise_filter(store, _config(noise_images=0.0))
    assert keep.all() and weights is None  # nothing asked for, nothing removed
    assert noise_filter(store, _config(kind="patchcore")) == (None, None)


@pytest.mark.parametrize("value", [-0.1, 0.6])
def test_noise_images_outside_zero_to_a_half_is_refused(value):
    with pytest.raises(ValueError, match="noise_images"):
        _config(noise_images=value)


def test_soft_weights_and_noise_images_are_hyperparameters():
    from pipelines.kinds.patchcore.training import SettingError, model_config

    config = model_config("softpatch", {"soft_weights": "True", "noise_images": "0.1"})
    assert config.soft_weights is True and config.noise_images == 0.1
    with pytest.raises(SettingError, match="soft_weights"):
        model_config("softpatch", {"soft_weights": "yes"})


@pytest.mark.parametrize("rule", ["support", "two_fold"])
def test_tiles_of_one_image_are_scored_and_left_out_together(rule):
    """With tiles, an image is several views: the two-fold halves split images (an overlapping tile of
    the same defect in the other half would hide it), the support of a cell counts images, not tiles,
    an image scores as a whole, and all its tiles go."""
    from inference.kinds.patchcore.model import image_noise_scores, noise_filter
    from inference.kinds.patchcore.patch_store import store_of

    image_of_view = np.repeat(np.arange(12), 3)  # 12 images of 3 tiles
    embeddings = _with_recurring_normals(images=36, defects=())
    embeddings[3 * 7 + 1, 4] += 12.0  # a defect in the middle tile of image 7
    embeddings[3 * 5 + 2, 6] = embeddings[3 * 5 + 0, 6] + 20.0  # twice in image 5, unlike any other image
    embeddings[3 * 5 + 0, 6] += 20.0
    store = store_of(embeddings, 8, 0)
    config = _config(noise_image_rule=rule, noise_support=2)
    scores = image_noise_scores(store, config, image_of_view=image_of_view)
    assert scores.shape == (12,) and set(np.argsort(-scores)[:2].tolist()) == {5, 7}
    keep, _ = noise_filter(store, replace(config, noise_images=0.2), image_of_view=image_of_view)  # 2 of 12 images
    kept_views = keep.reshape(36, 9).all(axis=1)
    assert np.flatnonzero(~kept_views).tolist() == [15, 16, 17, 21, 22, 23]
    with pytest.raises(ValueError, match="views numbered"):
        image_noise_scores(store, config, image_of_view=np.arange(10))

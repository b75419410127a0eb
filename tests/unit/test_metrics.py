"""Ranking metrics against hand-computed values and scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from pipelines import metrics


def test_image_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounding makes many ties
    assert metrics.image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_pixel_auroc_matches_sklearn():
    rng = np.random.default_rng(4)
    masks = np.zeros((3, 16, 16), np.uint8)
    masks[0, 2:6, 3:9] = 1
    masks[2, 10:15, 10:12] = 1
    maps = rng.normal(masks * 1.5, 1.0).astype(np.float32)
    expected = roc_auc_score(masks.reshape(-1), maps.reshape(-1))
    assert metrics.pixel_auroc(masks, maps) == pytest.approx(expected, abs=1e-12)


def test_auroc_is_undefined_with_one_label():
    assert metrics.image_auroc([0, 0, 0], [0.1, 0.2, 0.3]) is None
    assert metrics.pixel_auroc(np.zeros((1, 4, 4)), np.zeros((1, 4, 4))) is None


def test_threshold_metrics_match_sklearn():
    labels = np.array([0, 0, 1, 1, 1, 0, 1])
    predictions = np.array([0, 1, 1, 0, 1, 0, 1])
    got = metrics.threshold_metrics(labels, predictions)
    assert got["f1"] == pytest.approx(f1_score(labels, predictions))
    assert got["precision"] == pytest.approx(precision_score(labels, predictions))
    assert got["recall"] == pytest.approx(recall_score(labels, predictions))
    assert got["accuracy"] == pytest.approx(5 / 7)


def _diagonal_case(scores: dict) -> tuple[np.ndarray, np.ndarray]:
    """One 4×4 image: defect pixels A=(0,0), B=(0,1) (4-adjacent) and C=(1,2) (diagonal to B).

    8-connected they are one region of 3 pixels; 4-connected, {A, B} and {C}. Normal pixels: one at
    0.7, one at 0.5, eleven at 0.
    """
    mask = np.zeros((1, 4, 4), np.uint8)
    amap = np.zeros((1, 4, 4))
    for (row, col), score in zip([(0, 0), (0, 1), (1, 2)], (scores["A"], scores["B"], scores["C"])):
        mask[0, row, col] = 1
        amap[0, row, col] = score
    amap[0, 3, 3], amap[0, 2, 0] = 0.7, 0.5
    return mask, amap


def test_aupro_uses_8_connected_regions_by_hand():
    # Curve (FPR, PRO), 13 normal pixels, one region of 3: (0,0) → (0,1/3) at 0.9 → (1/13,1/3) at 0.7
    # → (1/13,2/3) at 0.6 → (2/13,2/3) at 0.5 → (2/13,1) at 0.3 → (1,1).
    # Area to 0.3: 1/13·1/3 + 1/13·2/3 + (0.3 − 2/13) = 0.3 − 1/13.
    mask, amap = _diagonal_case({"A": 0.9, "B": 0.6, "C": 0.3})
    assert metrics.aupro(mask, amap) == pytest.approx((0.3 - 1 / 13) / 0.3, abs=1e-12)
    # 4-connected it would be 1/13·1/4 + 1/13·1/2 + (0.3 − 2/13) = 0.3 − 1.25/13, i.e. 0.6795.
    assert metrics.aupro(mask, amap) != pytest.approx((0.3 - 1.25 / 13) / 0.3, abs=1e-3)


def test_aupro_is_anchored_at_the_origin():
    """A perfect map scores 1: the curve rises from (0, 0) straight to (0, 1)."""
    mask = np.zeros((2, 8, 8), np.uint8)
    mask[0, 2:4, 2:5] = 1
    mask[1, 5:7, 1:3] = 1
    amap = np.where(mask > 0, 2.0, 1.0) + np.random.default_rng(0).uniform(0, 0.5, mask.shape)
    assert metrics.aupro(mask, amap) == pytest.approx(1.0, abs=1e-12)


def test_aupro_ties_and_the_integration_limit_by_hand():
    """A normal pixel tied with a defect pixel makes a diagonal step; the limit cuts through it."""
    mask = np.zeros((1, 3, 4), np.uint8)
    amap = np.zeros((1, 3, 4))
    mask[0, 0, 0] = mask[0, 0, 1] = 1
    amap[0, 0, 0], amap[0, 0, 1] = 0.8, 0.5
    amap[0, 2, 3] = 0.5  # ten normal pixels: this one tied with the defect's weaker pixel
    # (0,0) → (0, 1/2) at 0.8 → (0.1, 1) at 0.5 → (1, 1)
    assert metrics.aupro(mask, amap, fpr_limit=0.05) == pytest.approx(0.05 * (0.5 + 0.75) / 2 / 0.05, abs=1e-12)
    assert metrics.aupro(mask, amap, fpr_limit=0.3) == pytest.approx((0.1 * 0.75 + 0.2) / 0.3, abs=1e-12)
    assert metrics.aupro(mask, amap, fpr_limit=1.0) == pytest.approx(0.1 * 0.75 + 0.9, abs=1e-12)


def test_aupro_over_several_images_counts_every_region_equally():
    """A large region and a small one weigh the same; normal pixels of every image count."""
    mask = np.zeros((2, 4, 4), np.uint8)
    amap = np.zeros((2, 4, 4))
    mask[0, :2, :] = 1  # 8 pixels, all found at 0.9
    amap[0, :2, :] = 0.9
    mask[1, 3, 3] = 1  # 1 pixel, found only at 0.2
    amap[1, 3, 3] = 0.2
    amap[1, 0, 0] = 0.6  # the highest of 23 normal pixels
    # (0,0) → (0, 1/2) at 0.9 → (1/23, 1/2) at 0.6 → (1/23, 1) at 0.2 → (1, 1) at 0
    expected = (1 / 23 * 0.5 + (0.3 - 1 / 23)) / 0.3
    assert metrics.aupro(mask, amap) == pytest.approx(expected, abs=1e-12)


def test_aupro_is_undefined_without_defects_or_without_normal_pixels():
    assert metrics.aupro(np.zeros((1, 4, 4)), np.zeros((1, 4, 4))) is None
    assert metrics.aupro(np.ones((1, 4, 4)), np.zeros((1, 4, 4))) is None


def _aupro_by_definition(masks, maps, limit):
    """Every distinct threshold, one at a time: FPR over normal pixels, mean overlap over 8-connected regions."""
    from scipy import ndimage

    regions = []
    for mask, amap in zip(masks, maps):
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += [amap[labels == i] for i in range(1, count + 1)]
    normal = maps[masks == 0]
    points = [(0.0, 0.0)] + [((normal >= t).mean(), np.mean([(r >= t).mean() for r in regions]))
                             for t in np.unique(maps)[::-1]]
    fpr, pro = np.array(points).T
    inside = fpr <= limit
    area = np.trapezoid(pro[inside], fpr[inside])
    if not inside.all():
        i = np.argmax(~inside)
        y = np.interp(limit, fpr[i - 1 : i + 1], pro[i - 1 : i + 1])
        area += (limit - fpr[i - 1]) * (pro[i - 1] + y) / 2
    return area / limit


@pytest.mark.parametrize("limit", [0.05, 0.3, 1.0])
def test_aupro_equals_its_definition_on_random_maps(limit):
    rng = np.random.default_rng(11)
    masks = np.zeros((3, 12, 12), np.uint8)
    masks[0, 2:5, 2:7] = 1
    masks[0, 8, 8] = masks[0, 9, 9] = 1  # diagonal pair: one region
    masks[2, 6:11, 1:3] = 1
    maps = np.round(rng.normal(masks * 1.2, 1.0), 1)  # rounded: many ties
    assert metrics.aupro(masks, maps, fpr_limit=limit) == pytest.approx(_aupro_by_definition(masks, maps, limit), abs=1e-12)

"""Anomaly-detection metrics: image AUROC, pixel AUROC, AUPRO (up to 30 % FPR), F1.

Ranking metrics take raw scores and raw anomaly maps: any monotone clipping (such as the
normalised score users see) creates ties and changes them. Only F1, precision, recall and
accuracy depend on a threshold. Plain numpy and scipy; `tests/unit/test_metrics.py` checks them
against hand-computed curves and scikit-learn.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.stats import rankdata

#: Default integration limit of AUPRO (Bergmann et al., 2021; MVTec AD's evaluation script).
AUPRO_FPR_LIMIT = 0.3
#: Connectivity of a defect region: 8-connected, as MVTec AD's script and anomalib label them.
REGION_STRUCTURE = np.ones((3, 3), dtype=int)


def auroc(labels, scores) -> float | None:
    """Area under the ROC curve (Mann–Whitney U with mid-ranks for ties); None with one class only."""
    labels = np.asarray(labels).reshape(-1) > 0
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)  # average rank for tied scores
    u = ranks[labels].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def image_auroc(labels, scores) -> float | None:
    return auroc(labels, scores)


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float | None:
    return auroc(np.asarray(masks) > 0, maps)


def aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = AUPRO_FPR_LIMIT) -> float | None:
    """Area under the per-region-overlap curve up to `fpr_limit`, divided by `fpr_limit`.

    Every 8-connected defect region counts equally, whatever its size. The curve is exact: one point
    per distinct score (pixels with equal scores cross the threshold together), anchored at
    (0, 0), integrated with the trapezoid rule and interpolated linearly at `fpr_limit`, as in
    MVTec AD's reference script.
    """
    truth = np.asarray(masks) > 0
    maps = np.asarray(maps, dtype=np.float64)
    if truth.shape != maps.shape:
        raise ValueError(f"masks {truth.shape} and maps {maps.shape} differ in shape")
    normal_count = int((~truth).sum())
    if normal_count == 0 or not truth.any():
        return None
    # per pixel: 1/size of its region (defect pixels), or 0 (normal pixels)
    region_share = np.zeros(truth.shape, dtype=np.float64)
    region_count = 0
    for index, mask in enumerate(truth):
        labels, count = ndimage.label(mask, structure=REGION_STRUCTURE)
        if count:
            sizes = np.bincount(labels.ravel())
            share = np.where(labels > 0, 1.0 / sizes[labels], 0.0)
            region_share[index] = share
            region_count += count
    scores, normal = maps.reshape(-1), ~truth.reshape(-1)
    share = region_share.reshape(-1)
    # Only thresholds down to the first one whose FPR passes the limit matter: keep the pixels at
    # or above the k-th highest normal score, k = floor(limit · normals) + 1.
    k = int(np.floor(fpr_limit * normal_count)) + 1
    if k <= normal_count:
        normal_scores = scores[normal]
        cut = np.partition(normal_scores, normal_count - k)[normal_count - k]
        kept = scores >= cut
        scores, normal, share = scores[kept], normal[kept], share[kept]
    order = np.argsort(-scores, kind="stable")
    scores, normal, share = scores[order], normal[order], share[order]
    fpr = np.cumsum(normal) / normal_count
    pro = np.cumsum(share) / region_count
    last_of_each_score = np.append(scores[1:] != scores[:-1], True)
    fpr = np.concatenate([[0.0], np.minimum(fpr[last_of_each_score], 1.0)])
    pro = np.concatenate([[0.0], np.minimum(pro[last_of_each_score], 1.0)])
    return float(_area_up_to(fpr, pro, fpr_limit) / fpr_limit)


def _area_up_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area under the polyline (x ascending, repeats allowed) from x[0] to `limit`."""
    inside = x <= limit
    area = float(np.trapezoid(y[inside], x[inside]))
    beyond = np.flatnonzero(~inside)
    if beyond.size:
        right = beyond[0]
        left = right - 1
        y_limit = y[left] + (y[right] - y[left]) * (limit - x[left]) / (x[right] - x[left])
        area += 0.5 * (y[left] + y_limit) * (limit - x[left])
    return area


def threshold_metrics(labels, predictions) -> dict:
    """F1, precision, recall and accuracy of thresholded verdicts (anomaly = positive)."""
    labels, predictions = np.asarray(labels, bool), np.asarray(predictions, bool)
    true_pos = int((labels & predictions).sum())
    predicted, actual = int(predictions.sum()), int(labels.sum())
    precision = true_pos / predicted if predicted else 0.0
    recall = true_pos / actual if actual else 0.0
    f1 = 2 * true_pos / (predicted + actual) if predicted + actual else 0.0
    return {
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "accuracy": float((labels == predictions).mean()) if labels.size else 0.0,
    }


def roc_points(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of the ROC curve, one point per distinct score, from (0, 0) to (1, 1)."""
    labels = np.asarray(labels).reshape(-1) > 0
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last = np.append(scores[1:] != scores[:-1], True)
    tpr = np.cumsum(labels)[last] / max(int(labels.sum()), 1)
    fpr = np.cumsum(~labels)[last] / max(int((~labels).sum()), 1)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])

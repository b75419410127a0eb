"""Anomaly-detection metrics: image AUROC, pixel AUROC, PRO (AUPRO up to 30 % FPR), F1."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score, roc_curve


def image_auroc(labels, scores) -> float | None:
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return None  # undefined without both normal and anomalous images
    return float(roc_auc_score(labels, scores))


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float | None:
    truth = masks.reshape(-1) > 0
    if truth.all() or not truth.any():
        return None
    return float(roc_auc_score(truth, maps.reshape(-1)))


def aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3, steps: int = 300) -> float | None:
    """Area under the per-region-overlap curve up to `fpr_limit`, normalised to [0, 1].

    Every connected defect region counts equally, whatever its size (Bergmann et al., 2021).
    """
    truth = masks > 0
    normal_scores = np.sort(maps[~truth])
    if normal_scores.size == 0 or not truth.any():
        return None
    regions = []
    for mask, amap in zip(truth, maps):
        labels, count = ndimage.label(mask)
        regions += [np.sort(amap[labels == i]) for i in range(1, count + 1)]
    thresholds = np.quantile(normal_scores, np.linspace(1.0, 1.0 - fpr_limit, steps))
    fpr = 1.0 - np.searchsorted(normal_scores, thresholds, side="left") / normal_scores.size
    pro = np.array([np.mean([1.0 - np.searchsorted(r, t, side="left") / r.size for r in regions]) for t in thresholds])
    order = np.argsort(fpr)
    fpr, pro = fpr[order], pro[order]
    keep = fpr <= fpr_limit
    fpr, pro = np.append(fpr[keep], fpr_limit), np.append(pro[keep], np.interp(fpr_limit, fpr, pro))
    return float(np.trapezoid(pro, fpr) / fpr_limit)


def threshold_metrics(labels, predictions) -> dict:
    labels, predictions = np.asarray(labels, bool), np.asarray(predictions, bool)
    return {
        "f1": float(f1_score(labels, predictions, zero_division=0)),
        "precision": float(precision_score(labels, predictions, zero_division=0)),
        "recall": float(recall_score(labels, predictions, zero_division=0)),
        "accuracy": float((labels == predictions).mean()),
    }


def roc_points(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr

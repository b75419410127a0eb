"""Patch scores → image score and pixel anomaly map (PatchCore, Sec. 3.3)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from inference.kinds.patchcore.features import resize_bilinear
from inference.kinds.patchcore.memory_bank import MemoryBank


def reweighted_image_score(
    patch_embeddings: np.ndarray,
    patch_scores: np.ndarray,
    nearest: np.ndarray,
    bank: MemoryBank,
    num_neighbors: int,
) -> float:
    """Paper's re-weighted image score: s = (1 - softmax(d(m_test*, N_b(m*)))[m*]) · s*.

    A test patch whose nearest bank entry sits in a dense region of the bank is trusted more than
    one whose nearest entry is isolated, which lowers scores of rare-but-normal patches.
    """
    worst = int(np.argmax(patch_scores))
    score = float(patch_scores[worst])
    if num_neighbors <= 1 or len(bank) <= 1:
        return score
    support = bank.neighbours_of_entry(int(nearest[worst]), num_neighbors)
    distances = np.linalg.norm(bank.embeddings[support] - patch_embeddings[worst][None, :], axis=1)
    shifted = distances - distances.max()  # numerically stable softmax
    softmax = np.exp(shifted) / np.exp(shifted).sum()
    return float((1.0 - softmax[0]) * score)


def anomaly_map(patch_scores: np.ndarray, grid: tuple[int, int], size: int, sigma: float) -> np.ndarray:
    """Patch scores on their grid, upsampled bilinearly to `size×size` and Gaussian-smoothed."""
    return smooth(upsample(patch_scores, grid, size), sigma)


def upsample(patch_scores: np.ndarray, grid: tuple[int, int], size: int) -> np.ndarray:
    """Patch scores on their grid, resized bilinearly to `size×size` (align_corners=False)."""
    grid_map = patch_scores.reshape(1, 1, *grid).astype(np.float32)
    return resize_bilinear(grid_map, size, size)[0, 0]


def smooth(full: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing; truncate=4 with σ=4 gives the reference's 33-pixel kernel."""
    if sigma > 0:
        return ndimage.gaussian_filter(full, sigma=sigma, truncate=4.0)
    return full

"""SoftPatch noise discrimination (Jiang et al., NeurIPS 2022), framework-free.

At every patch position the embeddings of all training images are compared with each other; a
patch that is an outlier among its peers at the same position is likely a defect that slipped into
the "good" set. The noisiest fraction τ is removed before the coreset, and each kept patch carries
an outlier score used as a soft weight on distances at scoring time.

One departure from the reference: a patch's outlier factor is divided by the median factor of its
own image. A defect is local, so it stands out from the rest of its image; an image that is unusual
everywhere (another lighting, another material batch) is a rare *normal* mode. Scored raw, such
images were the first to be filtered: on real solar-cell images (pipelines/BENCHMARKS.md) dropping
the top 1 % of raw LOF patches, 85 % of them from two such images, cost 8 points of image AUROC.
"""

from __future__ import annotations

import numpy as np

from inference.kinds.patchcore.sampler import random_projection

POSITION_CHUNK = 64  # positions processed together: bounds memory at chunk × images² floats


def patch_outlier_scores(
    embeddings: np.ndarray, method: str, k: int = 6, projection_dim: int = 128, seed: int = 0
) -> np.ndarray:
    """Noise score per patch, `[n_images, n_positions]`: its outlier factor among its peers at the
    same position relative to its own image's median factor; ≈1 for typical patches, larger for noise."""
    factors = position_outlier_factors(embeddings, method, k, projection_dim, seed)
    return factors / (np.median(factors, axis=1, keepdims=True) + 1e-10)


def position_outlier_factors(
    embeddings: np.ndarray, method: str, k: int = 6, projection_dim: int = 128, seed: int = 0
) -> np.ndarray:
    """Outlier factor of every patch among the patches of all images at the same position.

    `embeddings` has shape `[n_images, n_positions, dim]`; the result `[n_images, n_positions]`.
    """
    n_images, n_positions, dim = embeddings.shape
    projected = random_projection(embeddings.reshape(-1, dim), projection_dim, seed)
    by_position = projected.reshape(n_images, n_positions, -1).transpose(1, 0, 2)
    scorer = {"lof": _lof, "nearest": _nearest, "gaussian": _gaussian}[method]
    scores = np.empty((n_positions, n_images), dtype=np.float32)
    for start in range(0, n_positions, POSITION_CHUNK):
        chunk = np.ascontiguousarray(by_position[start : start + POSITION_CHUNK], dtype=np.float64)
        scores[start : start + POSITION_CHUNK] = scorer(chunk, k)
    return scores.T


def noise_mask_and_weights(scores: np.ndarray, noise_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep-mask (the `1 - τ` least noisy patches) and non-negative soft weights, both flattened."""
    flat = scores.reshape(-1)
    if noise_fraction <= 0:
        keep = np.ones_like(flat, dtype=bool)
    else:
        threshold = np.quantile(flat, 1.0 - noise_fraction)
        keep = flat <= threshold
    return keep, np.clip(flat, 0.0, None).astype(np.float32)


def _pairwise_distances(chunk: np.ndarray) -> np.ndarray:
    """Euclidean distances `[positions, images, images]`, self-distance set to +inf."""
    sq = np.einsum("pid,pid->pi", chunk, chunk)
    dist = sq[:, :, None] + sq[:, None, :] - 2.0 * np.einsum("pid,pjd->pij", chunk, chunk)
    dist = np.sqrt(np.maximum(dist, 0.0))
    idx = np.arange(chunk.shape[1])
    dist[:, idx, idx] = np.inf
    return dist


def _lof(chunk: np.ndarray, k: int) -> np.ndarray:
    """Local outlier factor of every image among the images at the same position."""
    n_images = chunk.shape[1]
    k = max(1, min(k, n_images - 1))
    dist = _pairwise_distances(chunk)
    neighbours = np.argsort(dist, axis=2)[:, :, :k]  # [P, N, k]
    knn_dist = np.take_along_axis(dist, neighbours, axis=2)
    k_distance = knn_dist[:, :, -1]  # [P, N]
    neighbour_k_distance = np.take_along_axis(k_distance[:, None, :].repeat(n_images, 1), neighbours, axis=2)
    reach = np.maximum(knn_dist, neighbour_k_distance)
    lrd = 1.0 / (reach.mean(axis=2) + 1e-10)
    neighbour_lrd = np.take_along_axis(lrd[:, None, :].repeat(n_images, 1), neighbours, axis=2)
    return neighbour_lrd.mean(axis=2) / lrd


def _nearest(chunk: np.ndarray, k: int) -> np.ndarray:
    """Distance to the nearest other image at this position, relative to the position's median, plus 1."""
    nearest = _pairwise_distances(chunk).min(axis=2)
    median = np.median(nearest, axis=1, keepdims=True) + 1e-10
    return nearest / median


def _gaussian(chunk: np.ndarray, k: int) -> np.ndarray:
    """Mahalanobis distance to the position's Gaussian (shrunk covariance), relative to its median."""
    n_positions, n_images, dim = chunk.shape
    centred = chunk - chunk.mean(axis=1, keepdims=True)
    cov = np.einsum("pid,pie->pde", centred, centred) / max(n_images - 1, 1)
    shrink = 0.01 * np.trace(cov, axis1=1, axis2=2)[:, None, None] / dim + 1e-6
    precision = np.linalg.inv(cov + shrink * np.eye(dim)[None])
    mahalanobis = np.sqrt(np.maximum(np.einsum("pid,pde,pie->pi", centred, precision, centred), 0.0))
    median = np.median(mahalanobis, axis=1, keepdims=True) + 1e-10
    return mahalanobis / median

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

from typing import Callable

import numpy as np

from inference.kinds.patchcore.sampler import random_projection

#: Positions scored together when memory is not limited.
POSITION_CHUNK = 64
#: Images measured against all the others at once by the neighbour methods (LOF, nearest): bounds
#: their memory at ROW_BLOCK × images distances per position, whatever the number of images.
ROW_BLOCK = 512

#: Reads the projected patches of positions [start, stop) of every image: `[images, stop - start, dim]`.
PositionReader = Callable[[int, int], np.ndarray]


def patch_outlier_scores(
    embeddings: np.ndarray, method: str, k: int = 6, projection_dim: int = 128, seed: int = 0
) -> np.ndarray:
    """Noise score per patch, `[n_images, n_positions]`: its outlier factor among its peers at the
    same position relative to its own image's median factor; ≈1 for typical patches, larger for noise."""
    return relative_to_image(position_outlier_factors(embeddings, method, k, projection_dim, seed))


def position_outlier_factors(
    embeddings: np.ndarray, method: str, k: int = 6, projection_dim: int = 128, seed: int = 0
) -> np.ndarray:
    """Outlier factor of every patch among the patches of all images at the same position.

    `embeddings` has shape `[n_images, n_positions, dim]`; the result `[n_images, n_positions]`.
    """
    n_images, n_positions, dim = embeddings.shape
    projected = random_projection(embeddings.reshape(-1, dim), projection_dim, seed).reshape(n_images, n_positions, -1)
    return outlier_factors(lambda start, stop: projected[:, start:stop], n_images, n_positions, method, k)


def relative_to_image(factors: np.ndarray) -> np.ndarray:
    """Each patch's factor divided by the median factor of its own image."""
    return factors / (np.median(factors, axis=1, keepdims=True) + 1e-10)


def outlier_factors(read: PositionReader, n_images: int, n_positions: int, method: str, k: int = 6,
                    positions_per_chunk: int = POSITION_CHUNK, progress=None) -> np.ndarray:
    """`position_outlier_factors` of patches read `positions_per_chunk` positions at a time.

    Every position is scored on its own, so the factors are the same, bit for bit, whatever the chunk.
    """
    scorer = {"lof": _lof, "nearest": _nearest, "gaussian": _gaussian}[method]
    scores = np.empty((n_positions, n_images), dtype=np.float32)
    for start in range(0, n_positions, positions_per_chunk):
        stop = min(n_positions, start + positions_per_chunk)
        chunk = np.ascontiguousarray(read(start, stop).transpose(1, 0, 2), dtype=np.float64)
        scores[start:stop] = scorer(chunk, k)
        if progress is not None:
            progress(stop - start)
    return scores.T


def positions_per_chunk(n_images: int, dim: int, method: str, budget_bytes: int) -> int:
    """Positions scored together within `budget_bytes` (at most `POSITION_CHUNK`, at least one): the
    patches in float64 and their working copies; the Gaussian also holds a covariance, its shrunk copy
    and its inverse per position, the neighbour methods a block of distances for one position at a time."""
    if method == "gaussian":
        per_position = n_images * dim * 8 * 3 + 3 * dim * dim * 8
        fixed = 0
    else:
        per_position = n_images * dim * 8
        fixed = 4 * min(ROW_BLOCK, n_images) * n_images * 8
    return int(max(1, min(POSITION_CHUNK, (budget_bytes - fixed) // per_position)))


def noise_mask_and_weights(scores: np.ndarray, noise_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep-mask (the `1 - τ` least noisy patches) and non-negative soft weights, both flattened."""
    flat = scores.reshape(-1)
    if noise_fraction <= 0:
        keep = np.ones_like(flat, dtype=bool)
    else:
        threshold = np.quantile(flat, 1.0 - noise_fraction)
        keep = flat <= threshold
    return keep, np.clip(flat, 0.0, None).astype(np.float32)


def _neighbours(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances `[n, k]` (ascending) and indices of every image's `k` nearest other images at one
    position, `ROW_BLOCK` images at a time."""
    n = len(points)
    sq = np.einsum("id,id->i", points, points)
    distances = np.empty((n, k))
    indices = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, ROW_BLOCK):
        stop = min(n, start + ROW_BLOCK)
        block = sq[start:stop, None] + sq[None, :] - 2.0 * (points[start:stop] @ points.T)
        block = np.sqrt(np.maximum(block, 0.0))
        block[np.arange(stop - start), np.arange(start, stop)] = np.inf
        nearest = np.argpartition(block, k - 1, axis=1)[:, :k] if k < n else np.argsort(block, axis=1)[:, :k]
        near = np.take_along_axis(block, nearest, axis=1)
        order = np.argsort(near, axis=1, kind="stable")
        indices[start:stop] = np.take_along_axis(nearest, order, axis=1)
        distances[start:stop] = np.take_along_axis(near, order, axis=1)
    return distances, indices


def _lof(chunk: np.ndarray, k: int) -> np.ndarray:
    """Local outlier factor of every image among the images at the same position."""
    n_images = chunk.shape[1]
    k = max(1, min(k, n_images - 1))
    factors = np.empty(chunk.shape[:2])
    for position, points in enumerate(chunk):
        knn_dist, neighbours = _neighbours(points, k)
        k_distance = knn_dist[:, -1]
        reach = np.maximum(knn_dist, k_distance[neighbours])
        lrd = 1.0 / (reach.mean(axis=1) + 1e-10)
        factors[position] = lrd[neighbours].mean(axis=1) / lrd
    return factors


def _nearest(chunk: np.ndarray, k: int) -> np.ndarray:
    """Distance to the nearest other image at this position, relative to the position's median."""
    factors = np.empty(chunk.shape[:2])
    for position, points in enumerate(chunk):
        nearest = _neighbours(points, 1)[0][:, 0]
        factors[position] = nearest / (np.median(nearest) + 1e-10)
    return factors


def _gaussian(chunk: np.ndarray, k: int) -> np.ndarray:
    """Mahalanobis distance to the position's Gaussian (shrunk covariance), relative to its median."""
    n_positions, n_images, dim = chunk.shape
    centred = chunk - chunk.mean(axis=1, keepdims=True)
    cov = np.matmul(centred.transpose(0, 2, 1), centred) / max(n_images - 1, 1)
    shrink = 0.01 * np.trace(cov, axis1=1, axis2=2)[:, None, None] / dim + 1e-6
    precision = np.linalg.inv(cov + shrink * np.eye(dim)[None])
    mahalanobis = np.sqrt(np.maximum(np.einsum("pid,pid->pi", np.matmul(centred, precision), centred), 0.0))
    median = np.median(mahalanobis, axis=1, keepdims=True) + 1e-10
    return mahalanobis / median



def cell_support(cell_of_row: np.ndarray, image_of_row: np.ndarray, images: int, cells: int) -> np.ndarray:
    """How many distinct images have a patch in each cell. `cell_of_row`: the cell (nearest centre of a
    fine coreset) of every training patch; `image_of_row`: the image it came from."""
    reached = np.unique(np.asarray(cell_of_row, np.int64) * images + image_of_row)  # one per (cell, image) pair
    return np.bincount(reached // images, minlength=cells)


def unshared_image_scores(excess_of_row: np.ndarray, positions: int, image_of_view: np.ndarray,
                          images: int) -> np.ndarray:
    """Every image's score: of its views, the highest mean over the view's patches of their excess (how
    far a patch no other image shares lies from the nearest shared cell; 0 for a shared patch)."""
    per_view = np.asarray(excess_of_row).reshape(-1, positions).mean(axis=1, dtype=np.float64)
    scores = np.zeros(images)
    np.maximum.at(scores, np.asarray(image_of_view), per_view)
    return scores

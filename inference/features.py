"""PatchCore patch embeddings from backbone feature maps (plain numpy/scipy).

As in the reference: every layer is locally aggregated over a `p×p` neighbourhood, deeper layers
are resized to the first layer's grid, each layer's channels are pooled to an equal share of the
target dimension (adaptive average pooling, no learned weights), and the shares are concatenated.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def local_aggregate(feature_map: np.ndarray, patch_size: int) -> np.ndarray:
    """Mean over a `patch_size²` neighbourhood, zero-padded like the reference's unfold."""
    if patch_size == 1:
        return feature_map
    pad = patch_size // 2
    padded = np.pad(feature_map, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    summed = ndimage.uniform_filter(padded, size=(1, 1, patch_size, patch_size), mode="constant")
    return summed[:, :, pad:-pad, pad:-pad]


def resize_bilinear(feature_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of `[N, C, h, w]` to `[N, C, height, width]` (align_corners=False)."""
    n, c, h, w = feature_map.shape
    if (h, w) == (height, width):
        return feature_map
    rows = _interp_matrix(h, height)
    cols = _interp_matrix(w, width)
    # two plain matrix products (BLAS) instead of one einsum, which takes a slow generic path
    resized = rows @ feature_map.reshape(n * c, h, w) @ cols.T
    return resized.reshape(n, c, height, width).astype(feature_map.dtype, copy=False)


def _interp_matrix(src: int, dst: int) -> np.ndarray:
    """Linear-interpolation weights mapping `src` samples onto `dst` (half-pixel centres)."""
    scale = src / dst
    centres = np.clip((np.arange(dst) + 0.5) * scale - 0.5, 0, src - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, src - 1)
    frac = (centres - low).astype(np.float32)
    matrix = np.zeros((dst, src), dtype=np.float32)
    matrix[np.arange(dst), low] += 1.0 - frac
    matrix[np.arange(dst), high] += frac
    return matrix


def adaptive_pool_channels(features: np.ndarray, out_dim: int) -> np.ndarray:
    """Adaptive average pooling over the last axis, as `torch.nn.functional.adaptive_avg_pool1d`."""
    in_dim = features.shape[-1]
    if in_dim == out_dim:
        return features
    # exact shortcuts of the general pooling for the common power-of-two channel counts
    if out_dim % in_dim == 0:
        return np.repeat(features, out_dim // in_dim, axis=-1)
    if in_dim % out_dim == 0:
        return features.reshape(*features.shape[:-1], out_dim, in_dim // out_dim).mean(axis=-1)
    starts = (np.arange(out_dim) * in_dim) // out_dim
    ends = -((-(np.arange(1, out_dim + 1)) * in_dim) // out_dim)  # ceil division
    pooling = np.zeros((in_dim, out_dim), dtype=np.float32)
    for j, (start, end) in enumerate(zip(starts, ends)):
        pooling[start:end, j] = 1.0 / (end - start)
    return features @ pooling


def patch_embeddings(feature_maps: list[np.ndarray], patch_size: int, embedding_dim: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Embeddings `[N, H*W, embedding_dim]` on the first layer's `H×W` grid, and that grid."""
    height, width = feature_maps[0].shape[-2:]
    share = embedding_dim // len(feature_maps)
    shares = []
    for index, fmap in enumerate(feature_maps):
        aggregated = resize_bilinear(local_aggregate(fmap, patch_size), height, width)
        n, c = aggregated.shape[:2]
        per_patch = aggregated.reshape(n, c, height * width).transpose(0, 2, 1)
        dim = share if index < len(feature_maps) - 1 else embedding_dim - share * (len(feature_maps) - 1)
        shares.append(adaptive_pool_channels(per_patch, dim))
    return np.ascontiguousarray(np.concatenate(shares, axis=-1), dtype=np.float32), (height, width)

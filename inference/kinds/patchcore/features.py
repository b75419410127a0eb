"""PatchCore patch embeddings from backbone feature maps (plain numpy/scipy).

As in the reference: every layer is locally aggregated over a `p×p` neighbourhood, deeper layers
are resized to the first layer's grid, each layer's channels are pooled to an equal share of the
target dimension (adaptive average pooling, no learned weights), and the shares are concatenated.
"""

from __future__ import annotations

import numpy as np


def local_aggregate(feature_map: np.ndarray, patch_size: int) -> np.ndarray:
    """Mean over a `patch_size²` neighbourhood of `[N, C, H, W]`, zero-padded like the reference."""
    if patch_size == 1:
        return feature_map
    return _aggregate_nhwc(feature_map.transpose(0, 2, 3, 1), patch_size).transpose(0, 3, 1, 2)


def _aggregate_nhwc(features: np.ndarray, patch_size: int) -> np.ndarray:
    """Box mean over H and W of channels-last `[N, H, W, C]`: every shifted slice is a run of
    contiguous rows, so the sums stream through memory."""
    pad = patch_size // 2
    height, width = features.shape[1:3]
    padded = np.pad(features, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    rows = padded[:, 0:height].copy()
    for i in range(1, patch_size):
        rows += padded[:, i : i + height]
    boxed = rows[:, :, 0:width].copy()
    for j in range(1, patch_size):
        boxed += rows[:, :, j : j + width]
    boxed *= np.float32(1.0 / (patch_size * patch_size))
    return boxed


def resize_bilinear(feature_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of `[N, C, h, w]` to `[N, C, height, width]` (align_corners=False)."""
    return _resize_nhwc(feature_map.transpose(0, 2, 3, 1), height, width).transpose(0, 3, 1, 2)


def _resize_nhwc(features: np.ndarray, height: int, width: int) -> np.ndarray:
    n, h, w, c = features.shape
    if (h, w) == (height, width):
        return features
    rows, cols = _interp_matrix(h, height), _interp_matrix(w, width)
    along_h = np.matmul(rows, features.reshape(n, h, w * c)).reshape(n * height, w, c)
    return np.matmul(cols, along_h).reshape(n, height, width, c)


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


def adaptive_pool_channels(features: np.ndarray, out_dim: int, axis: int = -1) -> np.ndarray:
    """Adaptive average pooling over one axis, as `torch.nn.functional.adaptive_avg_pool1d`."""
    features = np.moveaxis(features, axis, -1)
    in_dim = features.shape[-1]
    if in_dim == out_dim:
        pooled = features
    elif out_dim % in_dim == 0:
        pooled = np.repeat(features, out_dim // in_dim, axis=-1)
    elif in_dim % out_dim == 0:
        pooled = features.reshape(*features.shape[:-1], out_dim, in_dim // out_dim).mean(axis=-1)
    else:
        pooled = features @ _pooling_matrix(in_dim, out_dim)
    return np.moveaxis(pooled, -1, axis)


def _pooling_matrix(in_dim: int, out_dim: int) -> np.ndarray:
    starts = (np.arange(out_dim) * in_dim) // out_dim
    ends = -((-(np.arange(1, out_dim + 1)) * in_dim) // out_dim)  # ceil division
    pooling = np.zeros((in_dim, out_dim), dtype=np.float32)
    for j, (start, end) in enumerate(zip(starts, ends)):
        pooling[start:end, j] = 1.0 / (end - start)
    return pooling


def layer_shares(channels: list[int], embedding_dim: int) -> list[int]:
    """Dimensions each layer is pooled to in the reference: an equal share of `embedding_dim`."""
    share = embedding_dim // len(channels)
    return [share] * (len(channels) - 1) + [embedding_dim - share * (len(channels) - 1)]


def compact_width(channels: int, share: int) -> tuple[int, float]:
    """Stored width and scale of one layer's share.

    When the reference *up*-samples channels by an integer factor r (repeating each channel r
    times), Euclidean distances equal those of the original channels scaled by √r. Storing those
    instead gives bit-for-bit the same nearest neighbours and distances with r× less memory and
    search work (resnet18: 384 stored dimensions for the reference's 1024).
    """
    if share > channels and share % channels == 0:
        return channels, float(np.sqrt(share // channels))
    return share, 1.0


def patch_embeddings(feature_maps: list[np.ndarray], patch_size: int, embedding_dim: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Embeddings `[N, H*W, D]` on the first layer's `H×W` grid, and that grid.

    Channel pooling is linear and per position, so it commutes with the spatial averaging and
    resizing; pooling first makes those cheaper. `D` is `embedding_dim` unless `compact_width`
    stores an exactly equivalent, narrower form.
    """
    n = feature_maps[0].shape[0]
    height, width = feature_maps[0].shape[-2:]
    shares = layer_shares([f.shape[1] for f in feature_maps], embedding_dim)
    widths = [compact_width(f.shape[1], share) for f, share in zip(feature_maps, shares)]
    out = np.empty((n, height * width, sum(w for w, _ in widths)), dtype=np.float32)
    offset = 0
    for fmap, share, (stored, scale) in zip(feature_maps, shares, widths):
        pooled = adaptive_pool_channels(fmap, stored, axis=1) if stored != fmap.shape[1] else fmap
        channels_last = np.ascontiguousarray(pooled.transpose(0, 2, 3, 1))
        if scale != 1.0:
            channels_last *= np.float32(scale)
        if patch_size > 1:
            channels_last = _aggregate_nhwc(channels_last, patch_size)
        layer = _resize_nhwc(channels_last, height, width)
        out[:, :, offset : offset + stored] = layer.reshape(n, height * width, stored)
        offset += stored
    return out, (height, width)

"""Approximate greedy coreset selection (PatchCore, Sec. 3.2).

Greedy k-center on a random projection of the embeddings: every step adds the point farthest from
the points chosen so far. The projection (Johnson–Lindenstrauss) makes each distance cheap.

The textbook loop measures every point against every new centre, one matrix-vector product per
step: it reads all the points once per chosen point, 3 hours for 5,000 training images. Here the
points are measured lazily, in blocks: a block keeps the largest distance among its points as of
the last centre it was measured against; distances only shrink as centres are added, so that value
bounds the block's farthest point from above. The block with the largest bound is brought up to
date (against every centre it has not seen yet, as one matrix product); if its bound is still the
largest, its farthest point is the farthest of all, exactly as the textbook loop finds it. Blocks
far from the chosen points wait and later catch up on many centres at once, so the work is done in
matrix products rather than matrix-vector ones, and each block is read a few times, not once per step.

Points are read through a row source (`ArrayRows` in RAM, `FileRows` from a file of float32 rows),
always in the same blocks and with the same centres at once, so the selection is bit for bit the
same wherever the rows live.
"""

from __future__ import annotations

import mmap
import os
from typing import BinaryIO, Protocol

import numpy as np

#: Rows per block: the unit the lazy search measures and reads (1 MB at 128 dimensions).
BLOCK_ROWS = 2048
#: Most centres a block is measured against in one product: bounds that product's memory (8 MB).
CENTRE_CHUNK = 1024


class Rows(Protocol):
    """`n` float32 rows of `dim` values, read by index."""

    def __len__(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def take(self, indices: np.ndarray) -> np.ndarray:
        """float32 `[len(indices), dim]` copy of the rows at increasing `indices`."""

    def slice(self, start: int, stop: int) -> np.ndarray:
        """float32 `[stop - start, dim]` rows from `start` to `stop`."""


class ArrayRows:
    """Rows held in RAM."""

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.array)

    @property
    def dim(self) -> int:
        return self.array.shape[1]

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.array[indices]

    def slice(self, start: int, stop: int) -> np.ndarray:
        return self.array[start:stop]


class FileRows:
    """Rows of a file of float32 values (a path, or an open file that stays its owner's), mapped
    read-only; pages read are handed back to the system every `resident_bytes`, so resident memory
    stays bounded however many rows are read."""

    def __init__(self, source: str | os.PathLike | BinaryIO, dim: int, resident_bytes: int = 64 << 20):
        self._dim = dim
        self._owns_file = not hasattr(source, "fileno")
        self._file = open(source, "rb") if self._owns_file else source
        size = os.fstat(self._file.fileno()).st_size
        self.count = size // (4 * dim)
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        self._array = (np.frombuffer(self._map, np.float32).reshape(self.count, dim) if size
                       else np.zeros((0, dim), np.float32))
        self.resident_bytes = resident_bytes
        self._touched = 0

    def __len__(self) -> int:
        return self.count

    @property
    def dim(self) -> int:
        return self._dim

    def take(self, indices: np.ndarray) -> np.ndarray:
        rows = self._array[indices]
        self._release(rows.nbytes)
        return rows

    def slice(self, start: int, stop: int) -> np.ndarray:
        rows = np.array(self._array[start:stop])
        self._release(rows.nbytes)
        return rows

    def _release(self, nbytes: int) -> None:
        self._touched += nbytes
        if self._touched >= self.resident_bytes and self._map is not None:
            self._map.madvise(mmap.MADV_DONTNEED)
            self._touched = 0

    def close(self) -> None:
        self._array = None
        if self._map is not None:
            self._map.close()
        if self._owns_file:
            self._file.close()


def projection_matrix(in_dim: int, dim: int, seed: int) -> np.ndarray | None:
    """Gaussian random projection `[in_dim, dim]`, or None when the rows are already that small."""
    if in_dim <= dim:
        return None
    rng = np.random.default_rng(seed)
    return rng.standard_normal((in_dim, dim)).astype(np.float32) / np.sqrt(dim)


def random_projection(features: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Gaussian random projection to `dim` dimensions (identity when already that small)."""
    matrix = projection_matrix(features.shape[1], dim, seed)
    if matrix is None:
        return np.ascontiguousarray(features, dtype=np.float32)
    return np.ascontiguousarray(features @ matrix, dtype=np.float32)


def coreset_size(total: int, ratio: float) -> int:
    """Entries of a coreset of `ratio` of `total` rows (at least one)."""
    return max(1, int(np.ceil(ratio * total)))


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
    rows = ArrayRows(random_projection(features, projection_dim, seed))
    return select_coreset(rows, ratio, seed, eligible, progress)


def select_coreset(rows: Rows, ratio: float, seed: int = 0, eligible: np.ndarray | None = None,
                   progress=None) -> np.ndarray:
    """`greedy_coreset` on rows that are already projected (in RAM or in a file)."""
    candidates = np.flatnonzero(eligible) if eligible is not None else np.arange(len(rows))
    if len(candidates) == 0:
        raise ValueError("no patches are left to build a memory bank from")
    target = coreset_size(len(rows), ratio)
    if target >= len(candidates):
        return candidates
    return candidates[greedy_k_center(rows, target, seed, None if eligible is None else candidates, progress)]


def greedy_k_center(rows: Rows, count: int, seed: int = 0, candidates: np.ndarray | None = None,
                    progress=None) -> np.ndarray:
    """Positions (in `candidates`, default every row) of `count` points chosen by greedy k-center,
    starting from a seeded random one. Stops early when every point coincides with a chosen one."""
    size = len(candidates) if candidates is not None else len(rows)
    count = min(count, size)
    blocks = -(-size // BLOCK_ROWS)

    def block_rows(block: int) -> np.ndarray:
        start, stop = block * BLOCK_ROWS, min(size, (block + 1) * BLOCK_ROWS)
        return rows.slice(start, stop) if candidates is None else rows.take(candidates[start:stop])

    def row(position: int) -> np.ndarray:
        return rows.take(np.array([position if candidates is None else candidates[position]]))[0]

    start = int(np.random.default_rng(seed).integers(size))
    chosen = np.empty(count, dtype=np.int64)
    centres = np.empty((count, rows.dim), np.float32)
    centre_norms = np.empty(count, np.float32)
    distance = np.empty(size, np.float32)  # squared distance to the nearest centre a block has seen
    norms = np.empty(size, np.float32)  # squared norm of every point
    seen = np.zeros(blocks, np.int64)  # centres each block has been measured against
    bound = np.empty(blocks, np.float64)  # largest distance in each block, as of those centres
    farthest = np.empty(blocks, np.int64)  # the point at that distance

    def catch_up(block: int, upto: int) -> None:
        start, stop = block * BLOCK_ROWS, min(size, (block + 1) * BLOCK_ROWS)
        points = block_rows(block)
        if seen[block] == 0:
            norms[start:stop] = np.einsum("ij,ij->i", points, points)
        nearest = distance[start:stop]
        for first in range(int(seen[block]), upto, CENTRE_CHUNK):
            last = min(upto, first + CENTRE_CHUNK)
            products = points @ (centres[first:last].T * np.float32(-2.0))
            products += centre_norms[first:last]
            closest = products.min(axis=1)
            closest += norms[start:stop]
            np.maximum(closest, 0.0, out=closest)
            if first == 0:
                nearest[:] = closest
            else:
                np.minimum(nearest, closest, out=nearest)
        seen[block] = upto
        worst = int(np.argmax(nearest))
        bound[block], farthest[block] = nearest[worst], start + worst

    chosen[0] = start
    centres[0] = row(start)
    centre_norms[0] = centres[0] @ centres[0]
    for block in range(blocks):
        catch_up(block, 1)
    reported = 0
    for step in range(1, count):
        while True:
            block = int(np.argmax(bound))
            if seen[block] == step:
                break
            catch_up(block, step)
        if bound[block] <= 0.0:  # every point is a chosen point
            chosen, count = chosen[:step], step
            break
        new = int(farthest[block])
        chosen[step] = new
        centres[step] = row(new)
        centre_norms[step] = centres[step] @ centres[step]
        if progress is not None and step % 256 == 0:
            progress(step - reported)
            reported = step
    if progress is not None:
        progress(count - reported)
    return chosen


def coverage_radius(features: np.ndarray, selected: np.ndarray) -> float:
    """Largest distance from any point to its nearest selected point (the k-center objective)."""
    diffs = features[:, None, :] - features[selected][None, :, :]
    return float(np.sqrt((diffs**2).sum(-1)).min(axis=1).max())

"""Nearest-neighbour search over a memory bank with faiss (exact L2, or IVF for large banks)."""

from __future__ import annotations

import faiss
import numpy as np

# faiss computes small query batches (< 20 by default) with a slow non-BLAS loop; one image gives
# hundreds of patches, and serving sends one image at a time, so always take the BLAS path.
faiss.cvar.distance_compute_blas_threshold = 1

IVF_MIN_BANK = 50_000


class MemoryBank:
    """Patch embeddings of normal images with per-entry SoftPatch weights (1 for PatchCore)."""

    def __init__(self, embeddings: np.ndarray, weights: np.ndarray | None = None, index_kind: str = "flat"):
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        count, dim = self.embeddings.shape
        self.weights = np.ones(count, np.float32) if weights is None else np.asarray(weights, np.float32)
        if self.weights.shape != (count,):
            raise ValueError(f"memory bank has {count} entries but {self.weights.shape} weights")
        self.index_kind = index_kind
        self._sq_norms = np.einsum("ij,ij->i", self.embeddings, self.embeddings)
        self.index = _build_index(self.embeddings, index_kind)

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def neighbours_of_entry(self, entry: int, k: int) -> np.ndarray:
        """Indices of the `k` entries nearest to bank entry `entry` (itself first).

        One query: a numpy product is cheaper than waking faiss's thread pool for it.
        """
        k = min(k, len(self))
        sq_dist = self._sq_norms - 2.0 * (self.embeddings @ self.embeddings[entry])
        sq_dist[entry] = -np.inf
        nearest = np.argpartition(sq_dist, k - 1)[:k]
        return nearest[np.argsort(sq_dist[nearest])]

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Euclidean distances and indices of the `k` nearest entries for every query row."""
        k = min(k, len(self))
        sq_dist, indices = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return np.sqrt(np.maximum(sq_dist, 0.0)), indices


def _build_index(embeddings: np.ndarray, kind: str) -> faiss.Index:
    dim = embeddings.shape[1]
    if kind == "ivf" and len(embeddings) >= IVF_MIN_BANK:
        lists = int(np.sqrt(len(embeddings)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, lists)
        index.train(embeddings)
        index.nprobe = max(1, lists // 16)
    else:
        index = faiss.IndexFlatL2(dim)
    index.add(embeddings)
    return index

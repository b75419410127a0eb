"""One class's anomaly model: memory bank, calibration, scoring. Shared by PatchCore and SoftPatch.

The two kinds differ only in how the bank is built (SoftPatch drops noisy patches and keeps soft
weights) and in scoring (SoftPatch multiplies each patch distance by its neighbour's weight).
"""

from __future__ import annotations

import numpy as np

from inference.kinds.patchcore.anomaly_map import anomaly_map, reweighted_image_score
from inference.calibration import Calibration
from inference.kinds.patchcore.config import ModelConfig
from inference.kinds.patchcore.memory_bank import MemoryBank
from inference.kinds.patchcore.sampler import greedy_coreset
from inference.kinds.softpatch.noise import noise_mask_and_weights, patch_outlier_scores
from inference.vision.image_model import RawResult


class ClassModel:
    def __init__(self, bank: MemoryBank, config: ModelConfig, grid: tuple[int, int], calibration: Calibration | None = None):
        self.bank = bank
        self.config = config
        self.grid = tuple(grid)
        self.calibration = calibration

    @property
    def _weighted(self) -> bool:
        return self.config.kind == "softpatch" and self.config.soft_weights

    def patch_scores(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance of every patch to its nearest bank entry (SoftPatch: times its weight), and that entry."""
        distances, indices = self.bank.search(embeddings, 1)
        scores, nearest = distances[:, 0], indices[:, 0]
        if self._weighted:
            scores = scores * self.bank.weights[nearest]
        return scores, nearest

    def score(self, embeddings: np.ndarray, with_map: bool = True) -> RawResult:
        """Raw image score and (unless `with_map` is off) the raw anomaly map for one image's `[H*W, D]` embeddings."""
        if not with_map and not self._weighted:
            # the verdict alone: only the farthest patch matters, found without scoring every patch
            row, distance, entry = self.bank.farthest_query(embeddings)
            image_score = reweighted_image_score(embeddings[row : row + 1], np.array([distance]), np.array([entry]),
                                                 self.bank, self.config.num_neighbors)
            return RawResult(image_score, None)
        scores, nearest = self.patch_scores(embeddings)
        image_score = reweighted_image_score(embeddings, scores, nearest, self.bank, self.config.num_neighbors)
        amap = anomaly_map(scores, self.grid, self.config.image_size, self.config.anomaly_map_sigma) if with_map else None
        return RawResult(image_score, amap)


def build_memory_bank(embeddings: np.ndarray, config: ModelConfig, progress=None) -> MemoryBank:
    """Memory bank from training embeddings `[n_images, n_positions, dim]`."""
    n_images, n_positions, dim = embeddings.shape
    flat = embeddings.reshape(-1, dim)
    keep = weights = None
    if config.kind == "softpatch":
        outliers = patch_outlier_scores(embeddings, config.noise_method, config.lof_k, config.coreset_projection_dim, config.seed)
        keep, weights = noise_mask_and_weights(outliers, config.noise_fraction)
    chosen = greedy_coreset(flat, config.coreset_ratio, config.coreset_projection_dim, config.seed, keep, progress)
    return MemoryBank(flat[chosen], None if weights is None else weights[chosen], config.index)

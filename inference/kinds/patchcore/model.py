"""One class's anomaly model: memory bank, calibration, scoring. Shared by PatchCore and SoftPatch.

The two kinds differ only in how the bank is built (SoftPatch leaves out the training images, and on
request the patches, that look like defects) and, when SoftPatch keeps the paper's soft weights, in
scoring (each patch distance multiplied by its nearest entry's weight).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from inference.kinds.patchcore.anomaly_map import anomaly_map, reweighted_image_score, smooth, upsample
from inference.calibration import Calibration
from inference.kinds.patchcore.config import ModelConfig
from inference.kinds.patchcore.memory_bank import MemoryBank
from inference.kinds.patchcore.patch_store import PatchStore, store_of
from inference.kinds.patchcore.sampler import coreset_size, select_coreset
from inference.kinds.softpatch.noise import (POSITION_CHUNK, noise_mask_and_weights, outlier_factors,
                                             positions_per_chunk, relative_to_image, cell_support,
                                             unshared_image_scores)
from inference.vision.image_model import RawResult
from inference.vision.preprocessing import Layout

#: SoftPatch's "support" rule: its cells are a greedy coreset of this share of the training patches
#: (10 %: about ten patches a cell, fine enough that a defect's patches get cells of their own, as
#: the greedy choice reaches the outliers first; chosen on the noise bench's exploring seed)...
SUPPORT_CELL_RATIO = 0.1
#: ...but at most this many cells: the greedy choice costs cells × patches, and beyond about 200
#: images (157,000 patches at 224 px) more images only add support to the cells there are.
SUPPORT_CELL_LIMIT = 16384
#: Patches assigned to their cells at a time (8 MB of projected rows at 128 dimensions).
ASSIGN_CHUNK = 16384


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
        """Raw image score and (unless `with_map` is off) the raw anomaly map for one view's `[H*W, D]` embeddings."""
        image_score, scores = self._view(embeddings, with_map)
        amap = anomaly_map(scores, self.grid, self.config.image_size, self.config.anomaly_map_sigma) if with_map else None
        return RawResult(image_score, amap)

    def score_views(self, embeddings: np.ndarray, layout: Layout, with_map: bool = True) -> RawResult:
        """Raw score and map of one image from its views' `[v, H*W, D]` embeddings.

        The image score is the worst view's. The map: every view's patch scores upsampled to the view,
        placed on the image's canvas (overlaps averaged), smoothed there once, so that no seam is
        smoothed twice, and cut to the image. One resized view gives exactly `score`'s map.
        """
        if layout.count != len(embeddings):
            raise ValueError(f"{len(embeddings)} views embedded for a layout of {layout.count}")
        results = [self._view(view, with_map) for view in embeddings]
        image_score = max(score for score, _ in results)
        if not with_map:
            return RawResult(image_score, None)
        size = self.config.image_size
        canvas = layout.stitch([upsample(scores, self.grid, size) for _, scores in results])
        return RawResult(image_score, layout.crop(smooth(canvas, self.config.anomaly_map_sigma)))

    def _view(self, embeddings: np.ndarray, with_map: bool) -> tuple[float, np.ndarray | None]:
        """(raw score, patch scores or None) of one view."""
        if not with_map and not self._weighted:
            # the verdict alone: only the farthest patch matters, found without scoring every patch
            row, distance, entry = self.bank.farthest_query(embeddings)
            image_score = reweighted_image_score(embeddings[row : row + 1], np.array([distance]), np.array([entry]),
                                                 self.bank, self.config.num_neighbors)
            return image_score, None
        scores, nearest = self.patch_scores(embeddings)
        return reweighted_image_score(embeddings, scores, nearest, self.bank, self.config.num_neighbors), scores


def build_memory_bank(patches: PatchStore | np.ndarray, config: ModelConfig, progress=None,
                      noise_progress=None) -> MemoryBank:
    """Memory bank from a class's training patches: a `PatchStore`, or embeddings `[n_views, n_positions, dim]`.

    SoftPatch first scores every patch against the patches at its position in the other views and
    leaves the noisiest out (`noise_filter`); the greedy coreset then picks among the rest
    (`coreset_bank`). `progress` counts bank entries, `noise_progress` positions.
    """
    if isinstance(patches, np.ndarray):
        patches = store_of(patches, config.coreset_projection_dim, config.seed)
    keep, weights = noise_filter(patches, config, noise_progress)
    return coreset_bank(patches, config, keep, weights, progress)


def noise_filter(patches: PatchStore, config: ModelConfig, progress=None, image_of_view: np.ndarray | None = None,
                 image_scores: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """SoftPatch's keep-mask and soft weights of every patch (None, None for PatchCore).

    Left out: the images `image_noise_scores` finds most anomalous (`noise_images`), and the patches
    the paper's filter finds noisiest at their position (`noise_fraction`). The weights are the
    paper's outlier scores when `soft_weights` is on, else None. With both, the patch filter's τ is a
    share of every patch, those of the images left out included (the paper's SoftPatch alone:
    `noise_images=0`). `image_of_view` numbers the image each view came from (tiles: several views
    per image; default: one each). `image_scores`: `image_noise_scores` of these patches when the caller
    has them already. `progress` counts `noise_image_steps`, then positions."""
    patches.finish()
    if config.kind != "softpatch":
        return None, None
    keep, weights = np.ones(patches.rows, bool), None
    image_of_view = np.arange(patches.views) if image_of_view is None else np.asarray(image_of_view)
    if filters_images(config, images=len(np.unique(image_of_view))):
        scores = image_noise_scores(patches, config, progress, image_of_view) if image_scores is None else image_scores
        kept_images = images_to_keep(scores, config.noise_images)
        keep &= np.repeat(kept_images[image_of_view], patches.positions)
    if filters_patches(config):
        noisy_patches, factors = patch_noise(patches, config, progress)
        keep &= noisy_patches
        weights = factors if config.soft_weights else None
    return keep, weights


def filters_images(config: ModelConfig, images: int) -> bool:
    """Whether SoftPatch's image filter runs: asked for, and at least two images to compare."""
    return config.kind == "softpatch" and config.noise_images > 0 and images >= 2


def filters_patches(config: ModelConfig) -> bool:
    """Whether the paper's patch filter runs: patches to remove, or soft weights to keep."""
    return config.kind == "softpatch" and (config.noise_fraction > 0 or config.soft_weights)


def patch_noise(patches: PatchStore, config: ModelConfig, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """The paper's filter: keep-mask of the `1 - noise_fraction` patches least unusual at their position
    among all images, and every patch's outlier factor; in chunks of positions that fit half of the
    store's memory limit."""
    chunk = POSITION_CHUNK
    if patches.limit is not None:
        chunk = positions_per_chunk(patches.views, patches.projected_dim, config.noise_method, patches.limit // 2)
    factors = outlier_factors(patches.projected_positions, patches.views, patches.positions, config.noise_method,
                              config.lof_k, chunk, progress)
    return noise_mask_and_weights(relative_to_image(factors), config.noise_fraction)


def image_noise_scores(patches: PatchStore, config: ModelConfig, progress=None,
                       image_of_view: np.ndarray | None = None) -> np.ndarray:
    """How likely every training image is to be a defect, by `config.noise_image_rule`: higher is more
    likely. `image_of_view`: see `noise_filter`; `progress` counts `noise_image_steps`."""
    if config.noise_image_rule == "two_fold":
        return two_fold_scores(patches, config, progress, image_of_view)
    return support_scores(patches, config, progress, image_of_view)


def noise_image_steps(config: ModelConfig, patches: PatchStore) -> int:
    """What `image_noise_scores` counts: the entries of the coreset(s) it chooses, then the views it scores."""
    if config.noise_image_rule == "two_fold":
        return 2 * coreset_size(patches.rows, config.coreset_ratio) + patches.views
    return coreset_size(patches.rows, _support_cell_ratio(patches.rows)) + patches.views


def _support_cell_ratio(rows: int) -> float:
    return min(SUPPORT_CELL_RATIO, SUPPORT_CELL_LIMIT / max(1, rows))


def _numbered_views(patches: PatchStore, image_of_view: np.ndarray | None) -> tuple[np.ndarray, int]:
    image_of_view = np.arange(patches.views) if image_of_view is None else np.asarray(image_of_view)
    if len(image_of_view) != patches.views:
        raise ValueError(f"{len(image_of_view)} views numbered for a store of {patches.views}")
    return image_of_view, int(image_of_view.max()) + 1 if patches.views else 0


def support_scores(patches: PatchStore, config: ModelConfig, progress=None,
                   image_of_view: np.ndarray | None = None) -> np.ndarray:
    """Every training image's score by how much of it no other image shares (`unshared_image_scores`).

    Cells are a greedy coreset of the projected patches, each patch assigned to its nearest centre; a
    cell fewer than `noise_support` images reach is unshared, and each of its patches counts by its
    distance to the nearest shared centre, so that a far defect outweighs the slight oddities every
    image has (where normal appearance hardly recurs, as on random textures, those are many)."""
    image_of_view, images = _numbered_views(patches, image_of_view)
    if images < 2:
        return np.zeros(images)
    rows = patches.projected_rows()
    try:
        centres = rows.take(select_coreset(rows, _support_cell_ratio(patches.rows), config.seed, progress=progress))
        cell_of_row, _ = _nearest(rows, None, centres, patches.positions, progress)
        image_of_row = np.repeat(image_of_view.astype(np.int32), patches.positions)
        support = cell_support(cell_of_row, image_of_row, images, len(centres))
        del image_of_row
        shared = support >= config.noise_support
        excess = np.zeros(patches.rows, np.float32)
        unshared_rows = np.flatnonzero(~shared[cell_of_row])
        if shared.any() and len(unshared_rows):
            _, distances = _nearest(rows, unshared_rows, centres[shared])
            excess[unshared_rows] = np.sqrt(np.maximum(distances, 0.0))
    finally:
        if hasattr(rows, "close"):
            rows.close()
    return unshared_image_scores(excess, patches.positions, image_of_view, images)


def _nearest(rows, which: np.ndarray | None, centres: np.ndarray, positions: int | None = None,
             progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(nearest centre, squared distance to it) of the projected `rows[which]` (None: every row, read in
    order), `ASSIGN_CHUNK` rows at a time; `progress`, with `positions`, counts whole views done."""
    import faiss

    index = faiss.IndexFlatL2(centres.shape[1])
    index.add(np.ascontiguousarray(centres, np.float32))
    count = len(rows) if which is None else len(which)
    # cells are at most SUPPORT_CELL_LIMIT + 1: int32 halves what is kept per training patch
    nearest, distances = np.empty(count, np.int32), np.empty(count, np.float32)
    done = 0
    for start in range(0, count, ASSIGN_CHUNK):
        stop = min(count, start + ASSIGN_CHUNK)
        part = rows.slice(start, stop) if which is None else rows.take(which[start:stop])
        found_distances, found = index.search(np.ascontiguousarray(part, np.float32), 1)
        nearest[start:stop], distances[start:stop] = found[:, 0], found_distances[:, 0]
        if progress is not None and positions:
            views = stop // positions
            progress(views - done)
            done = views
    return nearest, distances


def two_fold_scores(patches: PatchStore, config: ModelConfig, progress=None,
                    image_of_view: np.ndarray | None = None) -> np.ndarray:
    """Every training image's PatchCore score against a bank of the other half of the images (halves
    drawn with the seed; an image's score is its worst view's, as in serving): a defect among the
    "good" images is unlike the other half, as a test defect is unlike the bank. Each half's bank is
    the coreset of its own patches, at the size of the whole. `image_of_view`: see `noise_filter`."""
    positions = patches.positions
    image_of_view, images = _numbered_views(patches, image_of_view)
    scores = np.zeros(images)
    if images < 2:
        return scores
    order = np.random.default_rng(config.seed).permutation(images)
    halves = (order[::2], order[1::2])
    plain = replace(config, kind="patchcore")
    for bank_half in halves:
        in_bank = np.isin(image_of_view, bank_half)
        # the grid only places an anomaly map, and no map is made here
        model = ClassModel(coreset_bank(patches, plain, np.repeat(in_bank, positions), progress=progress), plain,
                           (positions, 1))
        for view in np.flatnonzero(~in_bank):
            rows = np.arange(view * positions, (view + 1) * positions)
            score = model.score(patches.embedding_rows(rows), with_map=False).raw_score
            scores[image_of_view[view]] = max(scores[image_of_view[view]], score)
            if progress is not None:
                progress(1)
        del model  # one half's bank at a time
    return scores


def images_to_keep(scores: np.ndarray, share: float) -> np.ndarray:
    """Keep-mask of the images but the `floor(share × images)` with the highest scores. An image scoring 0
    (nothing in it unlike the other images) is never left out: which of several such images went would
    be the order of the files, not anything in them."""
    keep = np.ones(len(scores), bool)
    left_out = min(int(share * len(scores)), int(np.count_nonzero(np.asarray(scores) > 0)))
    if left_out:
        keep[np.argsort(-scores, kind="stable")[:left_out]] = False
    return keep


def coreset_bank(patches: PatchStore, config: ModelConfig, keep: np.ndarray | None = None,
                 weights: np.ndarray | None = None, progress=None) -> MemoryBank:
    """The memory bank: the greedy coreset of the (kept) patches, with their weights."""
    rows = patches.projected_rows()
    try:
        chosen = select_coreset(rows, config.coreset_ratio, config.seed, keep, progress)
    finally:
        if hasattr(rows, "close"):
            rows.close()
    return MemoryBank(patches.embedding_rows(chosen), None if weights is None else weights[chosen], config.index)


def memory_limit_bytes(config: ModelConfig) -> int | None:
    """The training memory limit in bytes, or None when there is none."""
    return config.memory_limit_mb * (1 << 20) if config.memory_limit_mb else None

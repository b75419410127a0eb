"""Images → patch embeddings: preprocessing, the ONNX backbone and PatchCore's embedding.

Training, evaluation and serving all call this one class, so their features cannot disagree. An
image becomes one view (resize, letterbox) or several (tiles) as its class's preprocessing says
(`inference.vision.preprocessing`); every view is embedded alike.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from inference.kinds.patchcore.features import patch_embeddings
from inference.vision.backbone import OnnxBackbone
from inference.vision.preprocessing import Layout, Preprocessing, normalise


class FeatureExtractor:
    def __init__(self, backbone: OnnxBackbone, image_size: int, patch_size: int, embedding_dim: int, batch_size: int = 8,
                 preprocessing: Preprocessing | None = None):
        self.backbone = backbone
        self.image_size = image_size
        self.patch_size = patch_size
        self.embedding_dim = embedding_dim
        self.batch_size = batch_size
        self.preprocessing = preprocessing or Preprocessing("resize", image_size)
        if self.preprocessing.image_size != image_size:
            raise ValueError(f"preprocessing is for {self.preprocessing.image_size} px, the extractor for {image_size} px")

    def views(self, image: Image.Image) -> tuple[np.ndarray, Layout]:
        """uint8 views `[v, size, size, 3]` of one image and where they sit on it."""
        return self.preprocessing.views(image)

    def normalise(self, views: np.ndarray) -> np.ndarray:
        """float32 `[v, 3, size, size]`: scaled to [0, 1] and normalised with the backbone's mean and std."""
        return normalise(views, self.backbone.spec.mean, self.backbone.spec.std)

    def preprocess(self, images: list[Image.Image]) -> np.ndarray:
        """Backbone input of every view of every image, in order."""
        return self.normalise(np.concatenate([self.views(image)[0] for image in images]))

    def embed_views(self, views: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """Embeddings `[v, H*W, D]` and the patch grid `(H, W)` of uint8 views, `batch_size` at a time."""
        parts, grid = [], None
        for start in range(0, len(views), self.batch_size):
            feature_maps = self.backbone(self.normalise(views[start : start + self.batch_size]))
            embeddings, grid = patch_embeddings(feature_maps, self.patch_size, self.embedding_dim)
            parts.append(embeddings)
        return (parts[0] if len(parts) == 1 else np.concatenate(parts)), grid

    def embed(self, images: list[Image.Image]) -> tuple[np.ndarray, tuple[int, int]]:
        """Embeddings `[V, H*W, D]` of every view of every image, in order, and the patch grid `(H, W)`."""
        return self.embed_views(np.concatenate([self.views(image)[0] for image in images]))

    def embed_batches(self, images: Iterable[Image.Image], views_per_image: list[int] | None = None
                      ) -> Iterator[tuple[np.ndarray, tuple[int, int]]]:
        """Embeddings of the views of `images`, `batch_size` views at a time (bounded memory for big folders);
        how many views each image gave is appended to `views_per_image` when one is passed."""
        pending: list[np.ndarray] = []
        count = 0
        for image in images:
            views = self.views(image)[0]
            if views_per_image is not None:
                views_per_image.append(len(views))
            pending.append(views)
            count += len(views)
            while count >= self.batch_size:
                stacked = np.concatenate(pending)
                yield self.embed_views(stacked[: self.batch_size])
                pending, count = [stacked[self.batch_size :]], count - self.batch_size
        if count:
            yield self.embed_views(np.concatenate(pending))

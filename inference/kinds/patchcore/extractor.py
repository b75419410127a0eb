"""Images → patch embeddings: preprocessing, the ONNX backbone and PatchCore's embedding.

Training, evaluation and serving all call this one class, so their features cannot disagree.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from inference.vision.backbone import OnnxBackbone
from inference.kinds.patchcore.features import patch_embeddings
from inference.vision.imageio import to_model_input


class FeatureExtractor:
    def __init__(self, backbone: OnnxBackbone, image_size: int, patch_size: int, embedding_dim: int, batch_size: int = 8):
        self.backbone = backbone
        self.image_size = image_size
        self.patch_size = patch_size
        self.embedding_dim = embedding_dim
        self.batch_size = batch_size

    def preprocess(self, images: list[Image.Image]) -> np.ndarray:
        spec = self.backbone.spec
        return to_model_input(images, self.image_size, spec.mean, spec.std)

    def embed(self, images: list[Image.Image]) -> tuple[np.ndarray, tuple[int, int]]:
        """Embeddings `[N, H*W, D]` and the patch grid `(H, W)` for a list of images."""
        feature_maps = self.backbone(self.preprocess(images))
        return patch_embeddings(feature_maps, self.patch_size, self.embedding_dim)

    def embed_batches(self, images: Iterable[Image.Image]) -> Iterator[tuple[np.ndarray, tuple[int, int]]]:
        """`embed` over an iterable in batches of `batch_size` (bounded memory for big folders)."""
        batch: list[Image.Image] = []
        for image in images:
            batch.append(image)
            if len(batch) == self.batch_size:
                yield self.embed(batch)
                batch = []
        if batch:
            yield self.embed(batch)

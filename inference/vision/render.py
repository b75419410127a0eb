"""What a person sees: heatmap overlays as PNG and defect regions as boxes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage


def _turbo_like_lut() -> np.ndarray:
    """256-entry blue→cyan→green→yellow→red colour map (no matplotlib in the endpoint image)."""
    stops = np.array([[0.0, 0, 0, 128], [0.25, 0, 96, 255], [0.5, 0, 220, 120], [0.75, 255, 220, 0], [1.0, 220, 0, 0]])
    x = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(x, stops[:, 0], stops[:, c]) for c in (1, 2, 3)], axis=1).astype(np.uint8)


COLORMAP = _turbo_like_lut()


def colourise(normalised_map: np.ndarray) -> np.ndarray:
    """RGB uint8 image of a map already scaled to [0, 1]."""
    return COLORMAP[np.clip(normalised_map * 255.0, 0, 255).astype(np.uint8)]


def heatmap_overlay(image: Image.Image, normalised_map: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The coloured map blended over the image, at the image's own resolution."""
    heat = Image.fromarray(colourise(normalised_map)).resize(image.size, Image.Resampling.BILINEAR)
    return Image.blend(image.convert("RGB"), heat, alpha)


def heatmap_rgba(normalised_map: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """Coloured map with opacity growing with the score, for overlaying in a browser."""
    rgb = Image.fromarray(colourise(normalised_map)).resize(size, Image.Resampling.BILINEAR)
    alpha = Image.fromarray(np.clip(normalised_map * 255.0, 0, 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    rgb.putalpha(alpha)
    return rgb


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # speed over a few KB
    return buffer.getvalue()


EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def regions(normalised_map: np.ndarray, threshold: float, original_size: tuple[int, int], min_area: int = 4) -> list[dict]:
    """Connected components of `map ≥ threshold` as boxes in original-image pixels, worst first.

    Pixels touching at a corner belong to one region (8-connectivity, as the AUPRO of evaluation
    counts regions): a thin diagonal scratch is one defect, not a staircase of boxes.

    Each region: `box` [x0, y0, x1, y1] (exclusive end), `score` (peak normalised score),
    `area` (pixels in the original image's scale).
    """
    mask = normalised_map >= threshold
    labels, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
    if count == 0:
        return []
    map_h, map_w = normalised_map.shape
    scale_x, scale_y = original_size[0] / map_w, original_size[1] / map_h
    peaks = ndimage.maximum(normalised_map, labels, index=np.arange(1, count + 1))
    areas = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    found = []
    for label, box in enumerate(ndimage.find_objects(labels)):
        if areas[label] < min_area:
            continue
        rows, cols = box
        found.append(
            {
                "box": [
                    int(np.floor(cols.start * scale_x)),
                    int(np.floor(rows.start * scale_y)),
                    int(np.ceil(cols.stop * scale_x)),
                    int(np.ceil(rows.stop * scale_y)),
                ],
                "score": round(float(peaks[label]), 4),
                "area": int(round(float(areas[label]) * scale_x * scale_y)),
            }
        )
    return sorted(found, key=lambda region: -region["score"])

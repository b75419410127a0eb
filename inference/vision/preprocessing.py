"""How an image becomes the model's input views, and how their maps go back onto the image.

One of three modes per class, chosen at training and stored in the bundle (`Preprocessing.to_dict`)
so that evaluation and serving repeat it exactly:

- `resize`: the whole image squashed to `image_size`² (the aspect ratio is lost). One view.
- `letterbox`: the image scaled to fit `image_size`² with its aspect ratio kept, centred, the rest
  filled with `fill` (the backbone's mean colour, which normalises to 0, as the network's own
  zero padding does). One view.
- `tile`: the image scaled by `image_size / tile_size` (1 when `tile_size` is `image_size`: the
  image's own pixels) and cut into `image_size`² tiles that overlap by `tile_overlap` of a tile;
  a side shorter than a tile is centred and filled. Several views.

Every view is an `image_size`² crop of a *canvas*: the image at the views' scale, placed on a
fill-coloured background. A view's map lands on the canvas at the view's place (overlaps are
averaged), and the part of the canvas the image covers is the map returned: its rows and columns
are the image's, at the views' scale, so heatmaps and regions scale straight back to the image.
Plain numpy and Pillow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from inference.errors import UnusableImage
from inference.vision.imageio import to_rgb

MODES = ("resize", "letterbox", "tile")


@dataclass(frozen=True)
class Preprocessing:
    mode: str = "resize"
    image_size: int = 256
    #: tile side in pixels of the original image (tile mode only; 0 means `image_size`)
    tile_size: int = 0
    #: overlap of neighbouring tiles, as a fraction of a tile (tile mode only)
    tile_overlap: float = 0.25
    #: RGB of the area a view covers outside the image (letterbox, tile)
    fill: tuple[int, int, int] = (124, 116, 104)
    #: most views one image may be cut into (tile mode): bounds the work of one request
    max_tiles: int = 256

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"preprocessing must be one of {MODES}, got {self.mode!r}")
        if not 0.0 <= self.tile_overlap < 1.0:
            raise ValueError(f"tile_overlap must be in [0, 1), got {self.tile_overlap}")
        if self.tile_size < 0:
            raise ValueError(f"tile_size must be 0 (the image size) or positive, got {self.tile_size}")

    @property
    def tile(self) -> int:
        """Tile side in original pixels."""
        return self.tile_size or self.image_size

    @property
    def stride(self) -> int:
        """Distance between neighbouring tiles, in canvas pixels."""
        return max(1, self.image_size - int(round(self.tile_overlap * self.image_size)))

    def to_dict(self) -> dict:
        data = {"mode": self.mode, "image_size": self.image_size}
        if self.mode != "resize":
            data["fill"] = list(self.fill)
        if self.mode == "tile":
            data.update(tile_size=self.tile, tile_overlap=self.tile_overlap, max_tiles=self.max_tiles)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        """As stored in a bundle; a bundle from before the modes were stored was resized."""
        values = {"mode": data.get("mode", "resize"), "image_size": int(data["image_size"])}
        if "fill" in data:
            values["fill"] = tuple(int(v) for v in data["fill"])
        for key, kind in (("tile_size", int), ("tile_overlap", float), ("max_tiles", int)):
            if key in data:
                values[key] = kind(data[key])
        return cls(**values)

    # ------------------------------------------------------------------------------ geometry

    def layout(self, width: int, height: int) -> "Layout":
        """Where the image and every view sit on the canvas, for an image of `width`×`height`."""
        size = self.image_size
        if self.mode == "resize":
            return Layout((width, height), (size, size), (0, 0, size, size), ((0, 0),))
        if self.mode == "letterbox":
            scale = size / max(width, height)
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            return Layout((width, height), (size, size), ((size - w) // 2, (size - h) // 2, w, h), ((0, 0),))
        scale = size / self.tile
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        canvas = (max(w, size), max(h, size))
        xs, ys = _starts(canvas[0], size, self.stride), _starts(canvas[1], size, self.stride)
        if len(xs) * len(ys) > self.max_tiles:
            raise UnusableImage(f"the image is {width}x{height}: {len(xs) * len(ys)} tiles of {self.tile} px, more than "
                                f"the {self.max_tiles} this model takes per image")
        content = ((canvas[0] - w) // 2, (canvas[1] - h) // 2, w, h)
        return Layout((width, height), canvas, content, tuple((x, y) for y in ys for x in xs))

    def views(self, image: Image.Image) -> tuple[np.ndarray, "Layout"]:
        """uint8 `[views, image_size, image_size, 3]` RGB views of `image` and their layout."""
        image = to_rgb(image)
        layout = self.layout(*image.size)
        size = self.image_size
        if self.mode == "resize":
            return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))[None], layout
        x, y, w, h = layout.content
        scaled = image if (w, h) == image.size else image.resize((w, h), Image.Resampling.BILINEAR)
        canvas = np.empty((layout.canvas[1], layout.canvas[0], 3), np.uint8)
        canvas[...] = np.asarray(self.fill, np.uint8)
        canvas[y : y + h, x : x + w] = np.asarray(scaled)
        views = np.stack([canvas[vy : vy + size, vx : vx + size] for vx, vy in layout.origins])
        return views, layout


def _starts(length: int, size: int, stride: int) -> list[int]:
    """Start of every tile along one side: the first at 0, the last ending at `length`, spread evenly."""
    if length <= size:
        return [0]
    count = math.ceil((length - size) / stride) + 1
    return [int(round(v)) for v in np.linspace(0, length - size, count)]


@dataclass(frozen=True)
class Layout:
    """The canvas of one image: its size, the image's place on it and every view's top-left corner."""

    original: tuple[int, int]  # (width, height) of the image
    canvas: tuple[int, int]  # (width, height)
    content: tuple[int, int, int, int]  # (x, y, width, height) of the image on the canvas
    origins: tuple[tuple[int, int], ...]  # (x, y) of every view

    @property
    def count(self) -> int:
        return len(self.origins)

    def stitch(self, view_maps: list[np.ndarray]) -> np.ndarray:
        """The views' maps (each `image_size`², same order as `origins`) on the canvas, overlaps averaged."""
        if len(view_maps) != self.count:
            raise ValueError(f"{len(view_maps)} maps for {self.count} views")
        if self.count == 1 and self.origins[0] == (0, 0) and view_maps[0].shape == self.canvas[::-1]:
            return view_maps[0]
        total = np.zeros(self.canvas[::-1], np.float32)
        count = np.zeros(self.canvas[::-1], np.float32)
        for (x, y), view in zip(self.origins, view_maps):
            h, w = view.shape
            total[y : y + h, x : x + w] += view
            count[y : y + h, x : x + w] += 1.0
        return total / np.maximum(count, 1.0)

    def crop(self, canvas_map: np.ndarray) -> np.ndarray:
        """The part of a canvas map the image covers: rows and columns of the image, at the views' scale."""
        x, y, w, h = self.content
        if (x, y) == (0, 0) and canvas_map.shape == (h, w):
            return canvas_map
        return np.ascontiguousarray(canvas_map[y : y + h, x : x + w])


def normalise(views: np.ndarray, mean, std) -> np.ndarray:
    """float32 `[v, 3, size, size]` from uint8 `[v, size, size, 3]` views: scaled to [0, 1], normalised."""
    mean = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    batch = views.astype(np.float32) / 255.0
    return (batch.transpose(0, 3, 1, 2) - mean) / std


def fill_of(mean) -> tuple[int, int, int]:
    """The RGB colour that normalises to zero with the backbone's `mean`."""
    return tuple(int(round(255.0 * float(m))) for m in mean)

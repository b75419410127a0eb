"""Preprocessing modes: where the image and every view sit, and how maps come back onto the image."""

import numpy as np
import pytest
from PIL import Image

from inference.errors import UnusableImage
from inference.vision.imageio import to_model_input
from inference.vision.preprocessing import Preprocessing, normalise

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FILL = (124, 116, 104)


def gradient(width: int, height: int) -> Image.Image:
    """An image whose every pixel says where it is: red = column, green = row."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    return Image.fromarray(np.stack([x % 256, y % 256, (x // 256) * 16 + (y // 256)], -1).astype(np.uint8))


def test_resize_is_the_squash_older_bundles_were_trained_with():
    image = gradient(300, 120)
    views, layout = Preprocessing("resize", 64).views(image)
    assert views.shape == (1, 64, 64, 3)
    assert np.array_equal(normalise(views, MEAN, STD), to_model_input([image], 64, MEAN, STD))
    assert layout.canvas == (64, 64) and layout.content == (0, 0, 64, 64)
    amap = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    assert layout.crop(layout.stitch([amap])) is amap  # the map covers the whole image, squashed like it


def test_preprocessing_of_a_bundle_without_a_mode_is_resize():
    assert Preprocessing.from_dict({"image_size": 224, "resize": "bilinear", "mean": list(MEAN)}) == Preprocessing("resize", 224)


def test_letterbox_keeps_the_aspect_ratio_and_fills_the_rest():
    image = Image.new("RGB", (300, 100), (200, 10, 10))
    views, layout = Preprocessing("letterbox", 60, fill=FILL).views(image)
    assert views.shape == (1, 60, 60, 3)
    assert layout.content == (0, 20, 60, 20)  # 300×100 → 60×20, centred
    assert (views[0, 20:40] == (200, 10, 10)).all()
    assert (views[0, :20] == FILL).all() and (views[0, 40:] == FILL).all()
    amap = np.zeros((60, 60), np.float32)
    amap[20:40] = 1.0
    cropped = layout.crop(amap)
    assert cropped.shape == (20, 60) and (cropped == 1.0).all()  # rows and columns of the image, 1 : 3


def test_tiles_are_crops_of_the_image_at_its_own_scale():
    image = gradient(400, 300)
    pre = Preprocessing("tile", 128, tile_overlap=0.25, fill=FILL)
    views, layout = pre.views(image)
    xs = sorted({x for x, _ in layout.origins})
    ys = sorted({y for _, y in layout.origins})
    assert xs[0] == 0 and xs[-1] == 400 - 128 and ys[0] == 0 and ys[-1] == 300 - 128
    assert len(xs) == 4 and len(ys) == 3  # stride 96: ceil((400 - 128) / 96) + 1, ceil((300 - 128) / 96) + 1
    assert all(b - a <= 96 for a, b in zip(xs, xs[1:])) and all(b - a <= 96 for a, b in zip(ys, ys[1:]))
    pixels = np.asarray(image)
    for view, (x, y) in zip(views, layout.origins):
        assert np.array_equal(view, pixels[y : y + 128, x : x + 128])
    assert layout.canvas == (400, 300) and layout.content == (0, 0, 400, 300)


def test_stitching_averages_overlaps_and_returns_the_image_grid():
    pre = Preprocessing("tile", 64, tile_overlap=0.5)
    layout = pre.layout(160, 96)
    maps = [np.full((64, 64), float(i), np.float32) for i in range(layout.count)]
    stitched = layout.crop(layout.stitch(maps))
    assert stitched.shape == (96, 160)
    # every pixel is the mean of the views that cover it
    expected = np.zeros((96, 160))
    count = np.zeros((96, 160))
    for i, (x, y) in enumerate(layout.origins):
        expected[y : y + 64, x : x + 64] += i
        count[y : y + 64, x : x + 64] += 1
    assert count.min() >= 1
    assert np.allclose(stitched, expected / count)


def test_larger_tiles_are_scaled_to_the_backbone_and_small_sides_are_filled():
    pre = Preprocessing("tile", 64, tile_size=128, fill=FILL)
    views, layout = pre.views(Image.new("RGB", (512, 96), (0, 0, 0)))
    assert layout.content == (0, (64 - 48) // 2, 256, 48)  # scaled by 64 / 128, height centred in one tile
    assert layout.canvas == (256, 64)
    assert (views[:, :8] == FILL).all() and (views[:, 8:56] == 0).all() and (views[:, 56:] == FILL).all()
    assert layout.crop(np.zeros((64, 256), np.float32)).shape == (48, 256)


def test_an_image_that_needs_too_many_tiles_is_refused_with_the_reason():
    with pytest.raises(UnusableImage, match="tiles"):
        Preprocessing("tile", 32, tile_overlap=0.0, max_tiles=16).layout(200, 200)
    assert Preprocessing("tile", 32, tile_overlap=0.0, max_tiles=49).layout(200, 200).count == 49


@pytest.mark.parametrize("values", [{"mode": "crop"}, {"tile_overlap": 1.0}, {"tile_size": -1}])
def test_invalid_preprocessing_is_refused(values):
    with pytest.raises(ValueError):
        Preprocessing(**{"mode": "tile", "image_size": 64, **values})


def test_int8_calibration_takes_a_few_spread_tiles_of_every_image():
    from pipelines.vision.quantize import MAX_CALIBRATION_VIEWS, calibration_views

    tiles = Preprocessing("tile", 32, tile_overlap=0.0)
    images = [gradient(320, 320) for _ in range(16)]  # 100 tiles each
    views = calibration_views(images, tiles)
    assert len(views) == MAX_CALIBRATION_VIEWS == 16 * 4
    first, last = tiles.views(images[0])[0][[0, -1]]
    assert np.array_equal(views[0], first) and np.array_equal(views[3], last)
    assert len(calibration_views(images, Preprocessing("letterbox", 32))) == 16  # one view each: all of them

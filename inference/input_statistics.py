"""What an input looked like, in a few numbers: recorded with every verdict and at training, so that
monitoring can tell when the line's lighting, focus, camera or a sensor drifts.

Images: brightness, contrast, sharpness, size and colour. They are computed on a copy reduced by a
whole factor to a longer side of at most `STATISTICS_SIDE` pixels, so that their cost hardly grows
with the image and sharpness is comparable between cameras of different resolution. Sensor windows: each sensor's mean,
spread and range over the window's finite readings.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

STATISTICS_SIDE = 256
IMAGE_STATISTICS = ("brightness", "contrast", "sharpness", "width", "height", "red", "green", "blue", "saturation")


def image_statistics(image: Image.Image) -> dict[str, float]:
    """Brightness and contrast (mean and standard deviation of luminance, 0-255), sharpness (variance
    of the Laplacian of luminance: falls when the image blurs), size in pixels, mean of each colour
    channel and mean saturation (0-255; 0 for a grey image)."""
    width, height = image.size
    small = image
    factor = -(-max(width, height) // STATISTICS_SIDE)
    if factor > 1 and image.mode in ("RGB", "RGBA", "L", "LA"):
        small = image.reduce(factor)  # box averaging by a whole factor: the cheapest way down, before any copy
    small = small.convert("RGB")
    if max(small.size) > STATISTICS_SIDE:  # modes that cannot be reduced directly
        small = small.reduce(-(-max(small.size) // STATISTICS_SIDE))
    rgb = np.asarray(small, dtype=np.float32)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue
    laplacian = (-4 * luminance[1:-1, 1:-1] + luminance[:-2, 1:-1] + luminance[2:, 1:-1]
                 + luminance[1:-1, :-2] + luminance[1:-1, 2:])
    # channel-wise maximum and minimum (a reduction over the last, 3-long axis is many times slower)
    saturation = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    means = (red.mean(), green.mean(), blue.mean())
    values = {
        "brightness": luminance.mean(), "contrast": luminance.std(),
        "sharpness": laplacian.var() if laplacian.size else 0.0,
        "width": width, "height": height, "red": means[0], "green": means[1], "blue": means[2],
        "saturation": saturation.mean(),
    }
    return {key: round(float(value), 4) for key, value in values.items()}


def window_statistics(values: np.ndarray, sensors: list[str]) -> dict[str, dict[str, float]]:
    """Per sensor: mean, standard deviation, minimum and maximum of the window's finite readings."""
    found = {}
    for column, name in enumerate(sensors):
        readings = values[:, column]
        readings = readings[np.isfinite(readings)]
        if readings.size:
            with np.errstate(over="ignore", invalid="ignore"):
                stats = {"mean": float(readings.mean()), "std": float(readings.std()),
                         "min": float(readings.min()), "max": float(readings.max())}
            if all(np.isfinite(value) for value in stats.values()):  # readings near 1e308 overflow the spread
                found[name] = {key: round(value, 6) for key, value in stats.items()}
    return found

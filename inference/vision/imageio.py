"""Decoding untrusted image bytes and turning images into backbone input.

Decoding is defensive: size limits before and after the header is read, a full decode so that
truncated files fail here and not deep inside the model, and one error type per user mistake.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from inference.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from inference.errors import NotAnImage, PayloadTooLarge, UnusableImage

ACCEPTED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF")
MIN_IMAGE_SIDE = 16

# A truncated file must be an error, never a silently grey-padded image.
ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


def decode_image(data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> Image.Image:
    """Decode PNG/JPEG/BMP/TIFF bytes into an RGB image, or raise a user-facing error."""
    if not data:
        raise NotAnImage("the image is empty")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the image is {len(data)} bytes; the limit is {max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format
            _check_declared_size(image.size)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnusableImage(f"the image is too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise NotAnImage("the data is not an image in a supported format (PNG, JPEG, BMP, TIFF)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnusableImage(f"the image could not be decoded: {exc}") from None
    if fmt not in ACCEPTED_FORMATS:
        raise NotAnImage(f"image format {fmt} is not supported; send PNG, JPEG, BMP or TIFF")
    if min(image.size) < MIN_IMAGE_SIDE:
        raise UnusableImage(f"the image is {image.size[0]}x{image.size[1]}; each side must be at least {MIN_IMAGE_SIDE} px")
    return to_rgb(image)


def _check_declared_size(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise UnusableImage(f"the image declares {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS} pixels")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB view of any mode: 16-bit greyscale is scaled down, alpha is dropped."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = max(float(array.max()), 1.0)
        scale = 65535.0 if peak > 255 else 255.0
        image = Image.fromarray(np.clip(array / scale * 255.0, 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def load_image_file(path) -> Image.Image:
    """Decode an image file with the same rules as a request body (no byte limit for local files)."""
    with open(path, "rb") as handle:
        return decode_image(handle.read(), max_bytes=1 << 62)


def to_model_input(images: list[Image.Image], size: int, mean, std) -> np.ndarray:
    """Resize to `size`×`size`, scale to [0, 1] and normalise: float32 `[N, 3, size, size]`."""
    mean = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    batch = np.stack([_resized_array(image, size) for image in images]).astype(np.float32) / 255.0
    return (batch.transpose(0, 3, 1, 2) - mean) / std


def _resized_array(image: Image.Image, size: int) -> np.ndarray:
    return np.asarray(to_rgb(image).resize((size, size), Image.Resampling.BILINEAR))

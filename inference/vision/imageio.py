"""Decoding untrusted image bytes and turning images into backbone input.

Decoding is defensive: size limits before and after the header is read, a full decode so that
truncated files fail here and not deep inside the model, and one error type per user mistake.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from inference.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from inference.errors import IvadasError, NotAnImage, PayloadTooLarge, UnusableImage

ACCEPTED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF")
MIN_IMAGE_SIDE = 16

# A truncated file must be an error, never a silently grey-padded image.
ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


def decode_image(data: bytes, max_bytes: int = MAX_IMAGE_BYTES, white_level: int | None = None) -> Image.Image:
    """Decode PNG/JPEG/BMP/TIFF bytes into an 8-bit RGB image, or raise a user-facing error.

    High-bit-depth images (16-bit grey or colour PNG, 16-bit TIFF) are scaled so that their white
    maps to 255: the white of the PNG's significant bits (sBIT) when it has them, else
    `white_level` (learnt from the training images and stored in the bundle, see
    `learn_white_level`), else the container's 65535.
    """
    if not data:
        raise NotAnImage("the image is empty")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the image is {len(data)} bytes; the limit is {max_bytes} bytes")
    image, fmt, deep = _decode(data)
    if fmt not in ACCEPTED_FORMATS:
        raise NotAnImage(f"image format {fmt} is not supported; send PNG, JPEG, BMP or TIFF")
    if min(image.size) < MIN_IMAGE_SIDE:
        raise UnusableImage(f"the image is {image.size[0]}x{image.size[1]}; each side must be at least {MIN_IMAGE_SIDE} px")
    if deep is None:
        return to_rgb(image)
    sbit = png_significant_bits(data) if fmt == "PNG" else None
    return _eight_bit(deep, white_level_of(deep, sbit, white_level))


def _decode(data: bytes) -> tuple[Image.Image, str, np.ndarray | None]:
    """(decoded image, format, full-depth samples of a high-bit-depth image or None)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format
            _check_declared_size(image.size)
            if fmt == "PNG" and _is_deep_colour_png(data):
                return image, fmt, _deep_colour_png(data)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnusableImage(f"the image is too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise NotAnImage("the data is not an image in a supported format (PNG, JPEG, BMP, TIFF)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnusableImage(f"the image could not be decoded: {exc}") from None
    deep = np.asarray(image) if image.mode in HIGH_DEPTH_MODES else None
    return image, fmt, deep


def _check_declared_size(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise UnusableImage(f"the image declares {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS} pixels")


# ------------------------------------------------------------------------- high bit depth

#: Pillow modes holding more than 8 bits per sample (16-bit grey PNG and TIFF, 32-bit integer TIFF).
HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CONTAINER_WHITE = 65535


def _png_chunks(data: bytes):
    """(type, payload) of the chunks before the image data."""
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind in (b"IDAT", b"IEND"):
            return
        yield kind, data[position + 8 : position + 8 + length]
        position += 12 + length


def _png_header(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG, or None for anything else."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    for kind, payload in _png_chunks(data):
        if kind == b"IHDR" and len(payload) >= 10:
            return payload[8], payload[9]
    return None


def _is_deep_colour_png(data: bytes) -> bool:
    return _png_header(data) in ((16, 2), (16, 6))  # 16-bit RGB, 16-bit RGBA


def png_significant_bits(data: bytes) -> int | None:
    """Significant bits per sample of a 16-bit PNG (its sBIT chunk; the largest over the colour
    channels), or None when the PNG does not say or is not 16-bit."""
    header = _png_header(data)
    if header is None or header[0] != 16:
        return None
    colour_channels = {0: 1, 2: 3, 4: 1, 6: 3}.get(header[1], 0)
    for kind, payload in _png_chunks(data):
        if kind == b"sBIT" and len(payload) >= colour_channels > 0:
            bits = max(payload[:colour_channels])
            return bits if 1 <= bits <= 16 else None
    return None


def _deep_colour_png(data: bytes) -> np.ndarray:
    """16-bit RGB(A) PNG samples `[H, W, 3]` as uint16. Pillow keeps only the high byte of each
    sample; decoding again with the little-endian unpacker yields the low byte."""
    planes = []
    for order in ("16B", "16L"):
        image = Image.open(io.BytesIO(data))
        image.tile = [tile._replace(args=f"{image.mode};{order}") for tile in image.tile]
        image.load()
        planes.append(np.asarray(image)[..., :3].astype(np.uint16))
    return (planes[0] << 8) | planes[1]


def white_level_for(peak: int) -> int:
    """The white of the smallest bit depth (at least 8) that holds `peak`: 3990 → 4095 (12 bits)."""
    return (1 << max(8, int(peak).bit_length())) - 1


def white_level_of(samples: np.ndarray, significant_bits: int | None, learnt: int | None) -> int:
    """The raw value that becomes 255.

    With significant bits b < 16, samples are either the camera's raw values (all within 2^b − 1)
    or, as the PNG standard asks of encoders, scaled up to 16 bits (then multiples of 2^(16−b) or
    with their low bits replicated from the high ones, and above 2^b − 1 unless nearly black).
    """
    if significant_bits is not None:
        top = (1 << significant_bits) - 1
        spare = 16 - significant_bits
        if significant_bits < 16 and samples.max() <= top and np.any(samples & ((1 << spare) - 1)):
            return top
        return CONTAINER_WHITE
    return int(learnt) if learnt else CONTAINER_WHITE


def _eight_bit(samples: np.ndarray, white: int) -> Image.Image:
    scaled = np.clip(np.rint(samples.astype(np.float64) * (255.0 / white)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L" if scaled.ndim == 2 else "RGB").convert("RGB")


def raw_peak(path) -> int | None:
    """Brightest raw sample of a high-bit-depth image file that does not state its significant
    bits; None for 8-bit images and for PNGs with an sBIT chunk (they say how to scale themselves)."""
    data = Path(path).read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            mode, fmt = image.mode, image.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    if mode not in HIGH_DEPTH_MODES and not (fmt == "PNG" and _is_deep_colour_png(data)):
        return None
    if fmt == "PNG" and png_significant_bits(data) is not None:
        return None
    try:
        _, _, deep = _decode(data)
    except IvadasError:
        return None
    return None if deep is None else int(deep.max())


def learn_white_level(paths) -> dict | None:
    """The white level of a class, learnt from its training images: the white of the bit depth
    that holds their brightest sample. None when no training image needs one (8-bit images, or
    PNGs that state their significant bits). Stored in the bundle and used at serving."""
    peaks = [peak for peak in (raw_peak(path) for path in paths) if peak is not None]
    if not peaks:
        return None
    brightest = max(peaks)
    return {"white_level": white_level_for(brightest), "brightest_sample": brightest, "images": len(peaks),
            "source": "training images"}


def to_rgb(image: Image.Image, white_level: int | None = None) -> Image.Image:
    """RGB view of a decoded image: high-bit-depth samples are scaled by `white_level`
    (default: the container's 65535), alpha is dropped."""
    if image.mode == "RGB":
        return image
    if image.mode in HIGH_DEPTH_MODES:
        return _eight_bit(np.asarray(image), white_level or CONTAINER_WHITE)
    return image.convert("RGB")


def load_image_file(path, white_level: int | None = None) -> Image.Image:
    """Decode an image file with the same rules as a request body (no byte limit for local files)."""
    with open(path, "rb") as handle:
        return decode_image(handle.read(), max_bytes=1 << 62, white_level=white_level)


def to_model_input(images: list[Image.Image], size: int, mean, std) -> np.ndarray:
    """Resize to `size`×`size`, scale to [0, 1] and normalise: float32 `[N, 3, size, size]`."""
    mean = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    batch = np.stack([_resized_array(image, size) for image in images]).astype(np.float32) / 255.0
    return (batch.transpose(0, 3, 1, 2) - mean) / std


def _resized_array(image: Image.Image, size: int) -> np.ndarray:
    return np.asarray(to_rgb(image).resize((size, size), Image.Resampling.BILINEAR))

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from inference.limits import MAX_IMAGE_PIXELS
from inference.errors import NotAnImage, PayloadTooLarge, UnusableImage
from inference.vision.imageio import decode_image, to_model_input


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares `width`×`height` pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "TIFF"])
def test_supported_formats_decode_to_rgb(fmt):
    image = decode_image(encode(Image.new("L", (40, 30), 128), fmt))
    assert image.mode == "RGB" and image.size == (40, 30)


def test_sixteen_bit_greyscale_is_scaled():
    array = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    image = decode_image(encode(Image.fromarray(array)))
    assert image.mode == "RGB"
    assert np.asarray(image).max() > 200


def test_text_is_not_an_image():
    with pytest.raises(NotAnImage):
        decode_image(b"hello, this is a text file renamed to .png")


def test_unsupported_format_is_rejected():
    with pytest.raises(NotAnImage, match="GIF"):
        decode_image(encode(Image.new("RGB", (32, 32)), "GIF"))


def test_truncated_png_is_unusable():
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(UnusableImage):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(UnusableImage, match="pixels|too large"):
        decode_image(bomb_png(100_000, 100_000))
    assert 100_000 * 100_000 > MAX_IMAGE_PIXELS


def test_oversized_payload_and_empty_and_tiny_images():
    with pytest.raises(PayloadTooLarge):
        decode_image(b"\x00" * 101, max_bytes=100)
    with pytest.raises(NotAnImage):
        decode_image(b"")
    with pytest.raises(UnusableImage, match="at least"):
        decode_image(encode(Image.new("RGB", (8, 8))))


def test_model_input_is_normalised_nchw():
    batch = to_model_input([Image.new("RGB", (50, 70), (255, 0, 0))], 32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert batch.shape == (1, 3, 32, 32) and batch.dtype == np.float32
    assert np.allclose(batch[0, 0], 1.0) and np.allclose(batch[0, 1], -1.0)

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from inference.limits import MAX_IMAGE_PIXELS
from inference.errors import NotAnImage, PayloadTooLarge, UnusableImage
from inference.vision import imageio
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


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def with_sbit(png: bytes, *bits: int) -> bytes:
    """`png` with an sBIT chunk (significant bits per channel) right after its IHDR."""
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + png_chunk(b"sBIT", bytes(bits)) + png[end_of_ihdr:]


def rgb16_png(array: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    height, width, _ = array.shape
    rows = array.astype(">u2")
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")


TWELVE_BIT = np.round(np.arange(64 * 64).reshape(64, 64) / (64 * 64 - 1) * 4095).astype(np.uint16)


def test_twelve_bit_png_uses_its_significant_bits():
    image = np.asarray(decode_image(with_sbit(encode(Image.fromarray(TWELVE_BIT)), 12)))
    assert image.max() == 255 and image.min() == 0
    assert np.array_equal(image[..., 0], np.rint(TWELVE_BIT / 4095 * 255).astype(np.uint8))


def test_twelve_bit_png_scaled_to_sixteen_bits_as_the_png_standard_says():
    """The PNG standard asks encoders to scale samples to the full depth; sBIT then only documents it."""
    shifted = (TWELVE_BIT << 4) | (TWELVE_BIT >> 8)  # left-bit replication
    image = np.asarray(decode_image(with_sbit(encode(Image.fromarray(shifted)), 12)))
    assert np.array_equal(image[..., 0], np.rint(shifted / 65535 * 255).astype(np.uint8))
    assert image.max() == 255


def test_sixteen_bit_colour_png_keeps_its_depth():
    array = np.stack([TWELVE_BIT, TWELVE_BIT // 2, 4095 - TWELVE_BIT], axis=-1)
    image = np.asarray(decode_image(with_sbit(rgb16_png(array), 12, 12, 12)))
    assert np.array_equal(image, np.rint(array / 4095 * 255).astype(np.uint8))
    unmarked = np.asarray(decode_image(rgb16_png(array), white_level=4095))
    assert np.array_equal(unmarked, image)


def test_sixteen_bit_without_significant_bits_uses_the_learnt_white_level():
    data = encode(Image.fromarray(TWELVE_BIT))
    image = np.asarray(decode_image(data, white_level=4095))
    assert image.max() == 255
    assert np.array_equal(image[..., 0], np.rint(TWELVE_BIT / 4095 * 255).astype(np.uint8))
    # brighter than the learnt white: saturates, as an over-exposed 8-bit frame would
    assert np.asarray(decode_image(data, white_level=1023)).max() == 255
    # significant bits in the file win over the learnt level
    assert np.array_equal(np.asarray(decode_image(with_sbit(data, 12), white_level=1023)), image)


def test_white_level_is_learnt_as_a_bit_depth():
    assert imageio.white_level_for(3990) == 4095
    assert imageio.white_level_for(4095) == 4095
    assert imageio.white_level_for(4096) == 8191
    assert imageio.white_level_for(65535) == 65535
    assert imageio.white_level_for(200) == 255


def test_raw_peak_of_high_bit_depth_files_only(tmp_path):
    png16 = tmp_path / "a.png"
    png16.write_bytes(encode(Image.fromarray(TWELVE_BIT)))
    assert imageio.raw_peak(png16) == 4095
    marked = tmp_path / "b.png"
    marked.write_bytes(with_sbit(encode(Image.fromarray(TWELVE_BIT)), 12))
    assert imageio.raw_peak(marked) is None  # its own significant bits say how to scale it
    tiff16 = tmp_path / "c.tif"
    tiff16.write_bytes(encode(Image.fromarray(TWELVE_BIT // 4), "TIFF"))
    assert imageio.raw_peak(tiff16) == 1023
    eight = tmp_path / "d.png"
    eight.write_bytes(encode(Image.new("L", (32, 32), 200)))
    assert imageio.raw_peak(eight) is None


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

"""What an image file is and how big it says it is, read from its header alone.

The API Lambda ships without Pillow; uploads are checked here for what they claim to be (a PNG,
JPEG, BMP, TIFF or WebP with sane dimensions) and decoded in full only where training reads them.
"""

from __future__ import annotations

import struct

#: Same pixel limit as the endpoints' (`inference.limits.MAX_IMAGE_PIXELS`): a decompression bomb
#: declares far more pixels than a camera frame.
MAX_PIXELS = 100_000_000


class NotAnImage(ValueError):
    pass


def image_info(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) of an image, or `NotAnImage` saying why it is not one we take."""
    for sniff in (_png, _jpeg, _bmp, _tiff, _webp):
        found = sniff(data)
        if found:
            kind, width, height = found
            if width <= 0 or height <= 0:
                raise NotAnImage(f"the {kind} header declares an empty image ({width}x{height})")
            if width * height > MAX_PIXELS:
                raise NotAnImage(f"the {kind} declares {width}x{height} pixels; the limit is {MAX_PIXELS}")
            return kind, width, height
    raise NotAnImage("not a PNG, JPEG, BMP, TIFF or WebP image")


EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "bmp": ".bmp", "tiff": ".tif", "webp": ".webp"}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "bmp": "image/bmp", "tiff": "image/tiff", "webp": "image/webp"}


def _png(data: bytes):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise NotAnImage("a PNG without its IHDR header (truncated?)")
    width, height = struct.unpack(">II", data[16:24])
    return "png", width, height


def _jpeg(data: bytes):
    if data[:3] != b"\xff\xd8\xff":
        return None
    position = 2
    while position + 9 < len(data):
        if data[position] != 0xFF:
            position += 1
            continue
        marker = data[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            position += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[position + 2:position + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return "jpeg", width, height
        position += 2 + length
    raise NotAnImage("a JPEG without a frame header (truncated?)")


def _bmp(data: bytes):
    if data[:2] != b"BM" or len(data) < 26:
        return None
    width, height = struct.unpack("<ii", data[18:26])
    return "bmp", abs(width), abs(height)


def _tiff(data: bytes):
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if order is None:
        return None
    try:
        offset = struct.unpack(order + "I", data[4:8])[0]
        count = struct.unpack(order + "H", data[offset:offset + 2])[0]
        size = {}
        for index in range(count):
            entry = data[offset + 2 + 12 * index:offset + 14 + 12 * index]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag in (256, 257):
                size[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
        return "tiff", size[256], size[257]
    except (struct.error, KeyError):
        raise NotAnImage("a TIFF without readable width and height (truncated?)") from None


def _webp(data: bytes):
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return "webp", 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return "webp", width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise NotAnImage("a WebP without a readable frame header")

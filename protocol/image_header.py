"""Image dimensions read from the first bytes of PNG, JPEG, WebP and GIF files.

Read by hand from the headers so a size check works on a truncated prefix and can never be made
to decode pixels: this is what refuses decompression bombs before anything decodes them.
"""

from __future__ import annotations

import base64
import binascii
import struct

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, 0xD8, *range(0xD0, 0xD8)}
# Enough base64 for any of these headers, JPEG's SOF after large EXIF blocks included.
HEADER_BASE64_CHARS = 4 * 64 * 1024


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L" and len(data) >= 25:
        b0, b1, b2, b3 = data[21:25]
        return 1 + (((b1 & 0x3F) << 8) | b0), 1 + (((b3 & 0x0F) << 10) | (b2 << 2) | (b1 >> 6))
    if kind == b"VP8X" and len(data) >= 30:
        return (1 + int.from_bytes(data[24:27], "little"),
                1 + int.from_bytes(data[27:30], "little"))
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's first bytes; None for an unknown or cut header."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    return None


def base64_image_size(encoded: str) -> tuple[int, int] | None:
    """image_size of a base64 image (optionally a data URL), decoding only its start."""
    if encoded.startswith("data:"):
        encoded = encoded.partition(",")[2]
    head = encoded[:HEADER_BASE64_CHARS]
    head = head[: len(head) - len(head) % 4]
    try:
        return image_size(base64.b64decode(head))
    except (binascii.Error, ValueError):
        return None

"""Image format and size from magic bytes and headers only: the worker never decodes pixels."""

from __future__ import annotations

from protocol.image_header import image_size

# (magic test, format name as Pillow spells it, MIME type for data URLs)
_FORMATS = (
    (lambda data: data.startswith(b"\x89PNG\r\n\x1a\n"), "PNG", "image/png"),
    (lambda data: data.startswith(b"\xff\xd8\xff"), "JPEG", "image/jpeg"),
    (lambda data: data.startswith(b"RIFF") and data[8:12] == b"WEBP", "WEBP", "image/webp"),
    (lambda data: data[:6] in (b"GIF87a", b"GIF89a"), "GIF", "image/gif"),
)
KNOWN_FORMATS = "PNG, JPEG, WebP or GIF"


def image_format(data: bytes) -> tuple[str, str] | None:
    """(format name, MIME type) of an image from its first bytes; None when unknown."""
    for test, name, mime in _FORMATS:
        if test(data):
            return name, mime
    return None


def describe_image(data: bytes) -> str:
    """E.g. `640x480 PNG`, read from the header without decoding anything."""
    kind = image_format(data)
    size = image_size(data)
    if kind is None or size is None:
        return f"an undecodable image of {len(data)} bytes"
    return f"{size[0]}x{size[1]} {kind[0]}"

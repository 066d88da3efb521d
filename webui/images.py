"""Uploaded images: validate, normalise to PNG/JPEG for the wire protocol, name by content."""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from protocol.image_header import image_size

ACCEPTED_TYPES = ("png", "jpg", "jpeg", "webp")
# The protocol carries base64 PNG or JPEG; other formats are converted to PNG.
_WIRE_FORMATS = {"PNG": "png", "JPEG": "jpg"}
# The controller's default limits: an image the page accepts is never refused there.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000


class ImageRejected(ValueError):
    """The upload is not an image this app accepts; the message says why."""


@dataclass(frozen=True)
class ChatImage:
    """One image of a conversation, as sent to workers and written to the log."""

    data: bytes
    sha256: str
    extension: str
    original_name: str

    @property
    def file_name(self) -> str:
        """The name the image is stored under: its content hash."""
        return f"{self.sha256}.{self.extension}"

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


def _size(n: int) -> str:
    """Bytes in the unit a person reads best."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} bytes"


def check_limits(data: bytes, original_name: str, max_bytes: int, max_pixels: int) -> None:
    """Refuse an upload over a limit from its length and header alone, before any decode."""
    if len(data) > max_bytes:
        raise ImageRejected(
            f"{original_name} is {_size(len(data))}; the limit is {_size(max_bytes)} per image"
        )
    size = image_size(data)
    if size is None:
        # Nothing unknown goes to a decoder: the header is what the pixel check relies on.
        raise ImageRejected(f"{original_name} is not a PNG, JPEG or WebP image")
    width, height = size
    if width * height > max_pixels:
        raise ImageRejected(
            f"{original_name} is {width}x{height} = {width * height / 1e6:.1f} M pixels; "
            f"the limit is {max_pixels / 1e6:g} M pixels per image"
        )


def load_image(data: bytes, original_name: str, *, max_bytes: int = MAX_IMAGE_BYTES,
               max_pixels: int = MAX_IMAGE_PIXELS) -> ChatImage:
    """Validate an upload (limits first, then decoding) and return it as PNG or JPEG."""
    check_limits(data, original_name, max_bytes, max_pixels)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            if image_format not in _WIRE_FORMATS:
                converted = io.BytesIO()
                image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB").save(
                    converted, format="PNG"
                )
                data, image_format = converted.getvalue(), "PNG"
            else:
                image.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
        raise ImageRejected(f"{original_name}: not a readable image ({exc})") from exc
    return ChatImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        extension=_WIRE_FORMATS[image_format],
        original_name=original_name,
    )

"""Uploaded images: validate, normalise to PNG/JPEG for the wire protocol, name by content."""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

ACCEPTED_TYPES = ("png", "jpg", "jpeg", "webp")
# The protocol carries base64 PNG or JPEG; other formats are converted to PNG.
_WIRE_FORMATS = {"PNG": "png", "JPEG": "jpg"}
# Decompression-bomb guard: far above any photo, far below what exhausts memory.
MAX_PIXELS = 50_000_000


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


def load_image(data: bytes, original_name: str) -> ChatImage:
    """Validate an upload and return it in a wire format (PNG or JPEG)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageRejected(
                    f"{original_name}: {image.width}x{image.height} pixels is too large"
                )
            image_format = image.format
            if image_format not in _WIRE_FORMATS:
                converted = io.BytesIO()
                image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB").save(
                    converted, format="PNG"
                )
                data, image_format = converted.getvalue(), "PNG"
            else:
                image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageRejected(f"{original_name}: not a readable image ({exc})") from exc
    return ChatImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        extension=_WIRE_FORMATS[image_format],
        original_name=original_name,
    )

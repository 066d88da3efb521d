"""Image sizes from headers only, checked against Pillow on real encoded files."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from protocol.image_header import base64_image_size, image_size


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
@pytest.mark.parametrize("size", [(1, 1), (37, 19), (640, 480), (3000, 17)])
def test_size_matches_pillow(fmt: str, size: tuple[int, int]) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", size, "blue").save(buffer, format=fmt)
    assert image_size(buffer.getvalue()) == size


def test_lossless_webp_size() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (123, 45)).save(buffer, format="WEBP", lossless=True)
    assert image_size(buffer.getvalue()) == (123, 45)


def test_jpeg_with_a_large_exif_block_is_read_past_it() -> None:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription
    Image.new("RGB", (50, 60)).save(buffer, format="JPEG", exif=exif)
    assert image_size(buffer.getvalue()) == (50, 60)


def test_truncated_prefix_and_unknown_formats() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (10, 20)).save(buffer, format="PNG")
    assert image_size(buffer.getvalue()[:24]) == (10, 20)
    assert image_size(b"BM not supported") is None
    assert image_size(b"") is None
    assert base64_image_size("not base64!") is None


def test_data_urls_are_read() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 9)).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    assert base64_image_size(url) == (8, 9)

"""Encode and decode the `\\0`-separated JSON frames of `/worker_generate_stream`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

FRAME_SEPARATOR = b"\0"

# Error codes the InternVL chat client prints; keep the small integers it knows.
OK = 0
NO_WORKER = 2
WORKER_FAILED = 3
BAD_REQUEST = 4


def encode_frame(text: str, error_code: int = OK, **extra: Any) -> bytes:
    """One frame: the whole text so far plus the error code, then the separator."""
    frame = {"text": text, "error_code": error_code, **extra}
    return json.dumps(frame, ensure_ascii=False).encode() + FRAME_SEPARATOR


def error_frame(message: str, error_code: int) -> bytes:
    """One frame that ends a stream with a cause a person can read."""
    return encode_frame(message, error_code)


class FrameDecoder:
    """Turn arbitrary byte chunks into complete frames (chunks may split or join frames)."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """Add bytes; return the frames completed by them."""
        self._pending += chunk
        *complete, self._pending = self._pending.split(FRAME_SEPARATOR)
        return [json.loads(raw) for raw in complete if raw.strip()]

    def close(self) -> list[dict[str, Any]]:
        """Return a last frame that had no trailing separator, if any."""
        rest, self._pending = self._pending, b""
        return [json.loads(rest)] if rest.strip() else []


def iter_frames(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Decode frames from a synchronous byte stream (e.g. `requests` iter_content)."""
    decoder = FrameDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.close()

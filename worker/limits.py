"""Input limits checked on the raw request, before any image is decoded.

Image bytes are estimated from the base64 length and pixels read from the header with
`protocol.image_header`, so an oversized image or a decompression bomb is refused without
decoding its base64 or its pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from protocol.image_header import base64_image_size
from worker.params import InvalidParams
from worker.settings import WorkerSettings, env_var_name


@dataclass(frozen=True)
class InputLimits:
    """Caps on one generation request; each error names the variable that raises it."""

    max_messages: int = 200
    max_prompt_chars: int = 200_000
    max_images: int = 16
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> InputLimits:
        """The limits the worker settings configure."""
        return cls(
            max_messages=settings.max_messages,
            max_prompt_chars=settings.max_prompt_chars,
            max_images=settings.max_images,
            max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels,
        )


def _too_many(what: str, count: int, name: str, limit: int) -> InvalidParams:
    return InvalidParams(
        f"{what} is {count}; the limit is {limit} ({env_var_name(name)} on the worker)"
    )


def _images(prompt: list[Any]) -> Iterator[tuple[str, Any]]:
    for index, message in enumerate(prompt):
        if not isinstance(message, dict):
            continue
        images = message.get("image") or []
        # parse_generation_params accepts a lone string as a one-image list; so do we.
        for number, image in enumerate([images] if isinstance(images, str) else images
                                       if isinstance(images, list) else []):
            yield f"prompt[{index}].image[{number}]", image


def _base64_bytes(image: str) -> int:
    """Decoded size of a base64 image (or data URL), from its length alone."""
    if image.startswith("data:"):
        image = image.partition(",")[2]
    return len(image) * 3 // 4


def check_input_limits(payload: Any, limits: InputLimits) -> None:
    """Raise InvalidParams naming the first limit the request breaks; malformed input passes
    through for the parser to name."""
    if not isinstance(payload, dict) or not isinstance(payload.get("prompt"), list):
        return
    prompt = payload["prompt"]
    if len(prompt) > limits.max_messages:
        raise _too_many("the number of prompt messages", len(prompt), "max_messages",
                        limits.max_messages)
    chars = sum(
        len(m["content"]) for m in prompt
        if isinstance(m, dict) and isinstance(m.get("content"), str)
    )
    if chars > limits.max_prompt_chars:
        raise _too_many("the prompt's text length in characters", chars, "max_prompt_chars",
                        limits.max_prompt_chars)
    images = list(_images(prompt))
    if len(images) > limits.max_images:
        raise _too_many("the number of images", len(images), "max_images", limits.max_images)
    for where, image in images:
        if not isinstance(image, str):
            continue  # the parser names the wrong type
        size_bytes = _base64_bytes(image)
        if size_bytes > limits.max_image_bytes:
            raise _too_many(f"the size of {where} in bytes", size_bytes, "max_image_bytes",
                            limits.max_image_bytes)
        size = base64_image_size(image)
        if size is not None and size[0] * size[1] > limits.max_image_pixels:
            raise _too_many(
                f"the pixel count of {where} ({size[0]}x{size[1]})", size[0] * size[1],
                "max_image_pixels", limits.max_image_pixels,
            )

"""Limits on one generation request, shared by the controller and the worker.

Checked on the raw params before anything is decoded: image bytes are estimated from the base64
length and pixels read from the header (`protocol.image_header`), so an oversized image or a
decompression bomb is refused unread. Both prompt shapes are read: InternVL's list of messages
with `image` lists, and LLaVA/FastChat's prompt string with a top-level `images` list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from protocol.image_header import base64_image_size


@dataclass(frozen=True)
class PromptLimits:
    """Caps on one generation request."""

    max_messages: int = 200
    max_prompt_chars: int = 200_000
    max_images: int = 16
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000


class LimitExceeded(ValueError):
    """A request over one limit; `setting` names the limit so callers can name its variable."""

    def __init__(self, setting: str, what: str, value: int, limit: int) -> None:
        super().__init__(f"{what} is {value}; the limit is {limit}")
        self.setting = setting
        self.value = value
        self.limit = limit


def _images(params: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    prompt = params.get("prompt")
    if isinstance(prompt, list):
        for index, message in enumerate(prompt):
            if not isinstance(message, dict):
                continue
            images = message.get("image") or []
            # A lone string is read as a one-image list, as the worker's parser does.
            listed = [images] if isinstance(images, str) else images
            if isinstance(listed, list):
                for number, image in enumerate(listed):
                    yield f"prompt[{index}].image[{number}]", image
    if isinstance(params.get("images"), list):
        for number, image in enumerate(params["images"]):
            yield f"images[{number}]", image


def _base64_bytes(image: str) -> int:
    """Decoded size of a base64 image (or data URL), from its length alone."""
    if image.startswith("data:"):
        image = image.partition(",")[2]
    return len(image) * 3 // 4


def check_prompt_limits(params: Any, limits: PromptLimits) -> None:
    """Raise LimitExceeded for the first limit the request breaks.

    Malformed input passes: the caller's own validation names what is wrong with it.
    """
    if not isinstance(params, dict):
        return
    prompt = params.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) > limits.max_messages:
            raise LimitExceeded("max_messages", "the number of prompt messages", len(prompt),
                                limits.max_messages)
        chars = sum(len(m["content"]) for m in prompt
                    if isinstance(m, dict) and isinstance(m.get("content"), str))
    else:
        chars = len(prompt) if isinstance(prompt, str) else 0
    if chars > limits.max_prompt_chars:
        raise LimitExceeded("max_prompt_chars", "the prompt's text length in characters", chars,
                            limits.max_prompt_chars)
    images = list(_images(params))
    if len(images) > limits.max_images:
        raise LimitExceeded("max_images", "the number of images", len(images), limits.max_images)
    for where, image in images:
        if not isinstance(image, str):
            continue
        size_bytes = _base64_bytes(image)
        if size_bytes > limits.max_image_bytes:
            raise LimitExceeded("max_image_bytes", f"the size of {where} in bytes", size_bytes,
                                limits.max_image_bytes)
        size = base64_image_size(image)
        if size is not None and size[0] * size[1] > limits.max_image_pixels:
            raise LimitExceeded("max_image_pixels",
                                f"the pixel count of {where} ({size[0]}x{size[1]})",
                                size[0] * size[1], limits.max_image_pixels)

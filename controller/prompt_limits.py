"""Limits on one generation request: messages, text, images, bytes and pixels.

Images are measured from their base64 length and their header only, so a decompression bomb is
refused before anything decodes it. Both prompt shapes are read: InternVL's list of messages with
`image` lists, and LLaVA/FastChat's prompt string with a top-level `images` list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from controller.errors import InvalidPrompt
from protocol.image_header import base64_image_size


@dataclass(frozen=True)
class PromptLimits:
    max_messages: int
    max_prompt_chars: int
    max_images: int
    max_image_bytes: int
    max_image_pixels: int


def _images(params: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    prompt = params.get("prompt")
    if isinstance(prompt, list):
        for index, message in enumerate(prompt):
            if isinstance(message, dict) and isinstance(message.get("image"), list):
                for number, image in enumerate(message["image"]):
                    yield f"prompt[{index}].image[{number}]", image
    if isinstance(params.get("images"), list):
        for number, image in enumerate(params["images"]):
            yield f"images[{number}]", image


def image_pixels(data: str) -> int | None:
    """Width x height read from a base64 image's header; None when the format is unknown."""
    size = base64_image_size(data)
    return None if size is None else size[0] * size[1]


def check_generation_params(params: dict[str, Any], limits: PromptLimits) -> None:
    """Raise InvalidPrompt naming the first limit the request breaks."""
    prompt = params.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) > limits.max_messages:
            raise InvalidPrompt(
                f"prompt has {len(prompt)} messages; the limit is {limits.max_messages}"
            )
        chars = sum(
            len(m["content"]) for m in prompt
            if isinstance(m, dict) and isinstance(m.get("content"), str)
        )
    elif isinstance(prompt, str):
        chars = len(prompt)
    else:
        chars = 0
    if chars > limits.max_prompt_chars:
        raise InvalidPrompt(
            f"prompt has {chars} characters of text; the limit is {limits.max_prompt_chars}"
        )
    images = list(_images(params))
    if len(images) > limits.max_images:
        raise InvalidPrompt(f"prompt has {len(images)} images; the limit is {limits.max_images}")
    for where, image in images:
        if not isinstance(image, str):
            raise InvalidPrompt(f"{where} must be a base64 string")
        size_bytes = len(image) * 3 // 4
        if size_bytes > limits.max_image_bytes:
            raise InvalidPrompt(
                f"{where} is about {size_bytes} bytes; the limit is {limits.max_image_bytes}"
            )
        pixels = image_pixels(image)
        if pixels is not None and pixels > limits.max_image_pixels:
            raise InvalidPrompt(
                f"{where} has {pixels} pixels; the limit is {limits.max_image_pixels}"
            )

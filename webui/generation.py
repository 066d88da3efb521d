"""Generation options with their bounds, and the request the controller receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webui.images import ChatImage


@dataclass(frozen=True)
class Bound:
    """A slider: range, default and step."""

    low: float
    high: float
    default: float
    step: float


# The InternVL demo's ranges; max_new_tokens capped where a CPU model still answers in time.
BOUNDS: dict[str, Bound] = {
    "temperature": Bound(0.0, 1.0, 0.2, 0.05),
    "top_p": Bound(0.0, 1.0, 0.7, 0.05),
    "repetition_penalty": Bound(1.0, 1.5, 1.1, 0.01),
    "max_new_tokens": Bound(16, 4096, 512, 16),
    "max_input_tiles": Bound(1, 32, 12, 1),
}
_INTEGER_OPTIONS = ("max_new_tokens", "max_input_tiles")


def clamp_options(values: dict[str, Any]) -> dict[str, float | int]:
    """Every option inside its bounds; missing or unreadable ones take the default."""
    clean: dict[str, float | int] = {}
    for name, bound in BOUNDS.items():
        try:
            value = float(values.get(name, bound.default))
        except (TypeError, ValueError):
            value = bound.default
        value = min(max(value, bound.low), bound.high)
        clean[name] = round(value) if name in _INTEGER_OPTIONS else value
    return clean


@dataclass
class Message:
    """One message of a conversation as the chat page keeps it."""

    role: str
    content: str
    images: list[ChatImage] = field(default_factory=list)
    error: str | None = None
    stopped: bool = False


def build_params(
    model: str,
    system_prompt: str,
    messages: list[Message],
    options: dict[str, Any],
    *,
    send_images: bool,
) -> dict[str, Any]:
    """The `/worker_generate_stream` body in the InternVL chat client's shape."""
    prompt: list[dict[str, Any]] = []
    if system_prompt.strip():
        prompt.append({"role": "system", "content": system_prompt.strip()})
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.role == "user" and send_images and message.images:
            item["image"] = [image.base64() for image in message.images]
        prompt.append(item)
    return {"model": model, "prompt": prompt, **clamp_options(options)}


def last_image_before(messages: list[Message], index: int) -> ChatImage | None:
    """The image a grounding answer at `index` refers to: the last one uploaded before it."""
    for message in reversed(messages[:index]):
        if message.images:
            return message.images[-1]
    return None


def images_in(messages: list[Message]) -> int:
    return sum(len(m.images) for m in messages)

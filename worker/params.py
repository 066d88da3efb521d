"""Parse and validate InternVL-style generation params into a typed `GenerationRequest`."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant")

# The InternVL chat demo's defaults, used when a client leaves a value out.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.7
DEFAULT_MAX_NEW_TOKENS = 1024
DEFAULT_REPETITION_PENALTY = 1.1
DEFAULT_MAX_INPUT_TILES = 12


class InvalidParams(ValueError):
    """The request cannot be served as sent; the message names the offending field."""


@dataclass(frozen=True)
class Message:
    """One chat turn; `images` holds the decoded bytes of each attached image."""

    role: str
    content: str
    images: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class GenerationRequest:
    """A validated generation request; temperature 0 means greedy decoding."""

    messages: tuple[Message, ...]
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY
    max_input_tiles: int = DEFAULT_MAX_INPUT_TILES
    model: str | None = None

    @property
    def image_count(self) -> int:
        """Images attached anywhere in the conversation."""
        return sum(len(message.images) for message in self.messages)

    @property
    def last_user_text(self) -> str:
        """The question being answered (the last user turn)."""
        return next(m.content for m in reversed(self.messages) if m.role == "user")


def parse_generation_params(payload: Any, *, context_size: int) -> GenerationRequest:
    """Validate a decoded JSON body; raise InvalidParams with a precise message."""
    if not isinstance(payload, dict):
        raise InvalidParams(f"request body must be a JSON object, got {type(payload).__name__}")
    model = payload.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidParams(f"model must be a string, got {model!r}")
    messages = _parse_prompt(payload.get("prompt"))
    temperature = _number(payload, "temperature", DEFAULT_TEMPERATURE)
    if temperature < 0:
        raise InvalidParams(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    top_p = _number(payload, "top_p", DEFAULT_TOP_P)
    if not 0 < top_p <= 1:
        raise InvalidParams(f"top_p must be in (0, 1], got {top_p}")
    repetition_penalty = _number(payload, "repetition_penalty", DEFAULT_REPETITION_PENALTY)
    if repetition_penalty <= 0:
        raise InvalidParams(f"repetition_penalty must be > 0, got {repetition_penalty}")
    max_new_tokens = _integer(payload, "max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if max_new_tokens <= 0:
        raise InvalidParams(f"max_new_tokens must be > 0, got {max_new_tokens}")
    max_input_tiles = _integer(payload, "max_input_tiles", DEFAULT_MAX_INPUT_TILES)
    if max_input_tiles < 1:
        raise InvalidParams(f"max_input_tiles must be >= 1, got {max_input_tiles}")
    return GenerationRequest(
        messages=messages,
        temperature=temperature,
        top_p=top_p,
        # The prompt needs room too; the backend trims further once it knows the prompt length.
        # 0 = context unknown here (an upstream server), which then caps max_tokens itself.
        max_new_tokens=min(max_new_tokens, context_size) if context_size else max_new_tokens,
        repetition_penalty=repetition_penalty,
        max_input_tiles=max_input_tiles,
        model=model,
    )


def _number(payload: dict[str, Any], name: str, default: float) -> float:
    value = payload.get(name)
    if value is None:
        return default
    # bool is an int subclass; `true` as a temperature is a client bug, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParams(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidParams(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _integer(payload: dict[str, Any], name: str, default: int) -> int:
    value = payload.get(name)
    if value is None:
        return default
    # JSON clients (and the InternVL sliders) may send 512.0 for 512.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams(f"{name} must be an integer, got {value!r}")
    return value


def _parse_prompt(prompt: Any) -> tuple[Message, ...]:
    if prompt is None:
        raise InvalidParams("prompt is missing: send a list of {role, content} messages")
    if not isinstance(prompt, list) or not prompt:
        raise InvalidParams("prompt must be a non-empty list of {role, content} messages")
    messages = [_parse_message(index, raw) for index, raw in enumerate(prompt)]
    # Some clients append an empty assistant turn as a placeholder for the answer.
    if len(messages) > 1 and messages[-1].role == "assistant" and not messages[-1].content:
        messages.pop()
    if messages[-1].role != "user":
        raise InvalidParams(
            f"the last message of prompt must come from the user, got role {messages[-1].role!r}"
        )
    return tuple(messages)


def _parse_message(index: int, raw: Any) -> Message:
    where = f"prompt[{index}]"
    if not isinstance(raw, dict):
        raise InvalidParams(f"{where} must be an object with role and content, got {raw!r}")
    role = raw.get("role")
    if role not in ROLES:
        raise InvalidParams(f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}")
    content = raw.get("content")
    if not isinstance(content, str):
        raise InvalidParams(f"{where}.content must be a string, got {content!r}")
    images = raw.get("image") or []
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list):
        raise InvalidParams(f"{where}.image must be a list of base64 images")
    decoded = tuple(_decode_image(f"{where}.image[{i}]", item) for i, item in enumerate(images))
    return Message(role=role, content=content, images=decoded)


def _decode_image(where: str, item: Any) -> bytes:
    if not isinstance(item, str) or not item:
        raise InvalidParams(f"{where} must be a non-empty base64 string")
    # Browsers hand out data URLs; accept them as well as bare base64.
    if item.startswith("data:") and "," in item:
        item = item.split(",", 1)[1]
    try:
        # validate=True rejects stray characters; line breaks (MIME style) are harmless.
        return base64.b64decode("".join(item.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParams(f"{where} is not valid base64") from None

"""OpenAI chat-completions on top of the worker protocol: request mapping and stream shaping.

Framework-free: api.py exposes it as `GET /v1/models` and `POST /v1/chat/completions`. Requests
go through the same dispatch, failover and in-flight accounting as `/worker_generate_stream`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from protocol.frames import BAD_REQUEST, NO_WORKER, OK, FrameDecoder

_DATA_URL_PREFIXES = ("data:image/png;base64,", "data:image/jpeg;base64,",
                      "data:image/jpg;base64,", "data:image/webp;base64,",
                      "data:image/gif;base64,")


class OpenAIRequestError(ValueError):
    """A chat-completions request this controller cannot serve; maps to OpenAI's error JSON."""

    def __init__(self, message: str, param: str | None = None, status_code: int = 400,
                 code: str | None = None, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.param = param
        self.status_code = status_code
        self.code = code
        self.error_type = error_type

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.error_type, "param": self.param,
                          "code": self.code}}


def model_not_found(model: str) -> OpenAIRequestError:
    return OpenAIRequestError(
        f"The model {model!r} does not exist or no worker serves it", "model", 404,
        "model_not_found",
    )


@dataclass(frozen=True)
class ChatRequest:
    model: str
    stream: bool
    worker_params: dict[str, Any]


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise OpenAIRequestError(f"{name} must be a number in [{low:g}, {high:g}]", name)
    return float(value)


def _content_parts(content: Any, where: str) -> tuple[str, list[str]]:
    """Text and base64 images of one message's content (a string or a list of parts)."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise OpenAIRequestError(f"{where}.content must be a string or a list of parts", where)
    texts, images = [], []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise OpenAIRequestError(f"{where}.content[{index}].image_url.url is missing",
                                         where)
            prefix = next((p for p in _DATA_URL_PREFIXES if url.startswith(p)), None)
            if prefix is None:
                # Fetching arbitrary URLs from the controller would let callers probe its network.
                raise OpenAIRequestError(
                    f"{where}.content[{index}]: only base64 data URLs of PNG, JPEG, WebP or "
                    "GIF images are accepted", where,
                )
            images.append(url[len(prefix):])
        else:
            raise OpenAIRequestError(
                f"{where}.content[{index}] must be a text or image_url part", where
            )
    return "\n".join(texts), images


def parse_chat_request(body: Any) -> ChatRequest:
    """Map an OpenAI chat-completions body to the worker protocol's generation params."""
    if not isinstance(body, dict):
        raise OpenAIRequestError("the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise OpenAIRequestError("model is required", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise OpenAIRequestError("messages must be a non-empty list", "messages")
    prompt = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise OpenAIRequestError(f"{where} must be an object", "messages")
        role = message.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant"):
            raise OpenAIRequestError(
                f"{where}.role must be system, developer, user or assistant", "messages"
            )
        text, images = _content_parts(message.get("content"), where)
        entry: dict[str, Any] = {"role": role, "content": text}
        if images:
            entry["image"] = images
        prompt.append(entry)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = 1024
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise OpenAIRequestError("max_tokens must be an integer >= 1", "max_tokens")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise OpenAIRequestError("stream must be true or false", "stream")
    params = {
        "model": model,
        "prompt": prompt,
        "temperature": _number(body, "temperature", 0.7, 0, 2),
        "top_p": _number(body, "top_p", 1.0, 0, 1) or 1.0,
        "max_new_tokens": max_tokens,
        # OpenAI has no repetition penalty; a frequency penalty is the nearest knob.
        "repetition_penalty": 1.0 + max(0.0, _number(body, "frequency_penalty", 0, -2, 2)) / 2,
        "max_input_tiles": 6,
    }
    return ChatRequest(model, stream, params)


class CompletionShaper:
    """Turns cumulative-text frames into OpenAI chunks and a final completion."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.sent_text = ""
        self.final_text = ""
        self.error: OpenAIRequestError | None = None

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None) -> bytes:
        payload = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"

    def accept(self, frame: dict[str, Any]) -> str:
        """Take one frame; return the new text it adds (empty when none, or on error)."""
        code = frame.get("error_code", OK)
        text = frame.get("text", "")
        if code != OK:
            if code == NO_WORKER:
                self.error = model_not_found(self.model)
            elif code == BAD_REQUEST:
                self.error = OpenAIRequestError(text)
            else:
                self.error = OpenAIRequestError(text, status_code=502, code="worker_failed",
                                                error_type="server_error")
            return ""
        # Frames carry the whole text so far; a stream sends what is new. A worker that
        # rewrites text already sent (some strip trailing spaces at the end) cannot take it
        # back through a delta, so only text beyond what was sent goes out.
        self.final_text = text
        if len(text) <= len(self.sent_text):
            return ""
        delta = text[len(self.sent_text):]
        self.sent_text += delta
        return delta

    async def sse(self, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Server-sent events in OpenAI's chunk format, ending with `[DONE]`."""
        decoder = FrameDecoder()
        yield self._chunk({"role": "assistant", "content": ""}, None)
        async for raw in frames:
            for frame in decoder.feed(raw):
                delta = self.accept(frame)
                if delta:
                    yield self._chunk({"content": delta}, None)
        if self.error is not None:
            yield b"data: " + json.dumps(self.error.to_json()).encode() + b"\n\n"
        else:
            yield self._chunk({}, "stop")
        yield b"data: [DONE]\n\n"

    async def complete(self, frames: AsyncIterator[bytes]) -> dict[str, Any]:
        """The whole answer as one chat.completion object (raises on an error frame)."""
        decoder = FrameDecoder()
        async for raw in frames:
            for frame in decoder.feed(raw):
                self.accept(frame)
        if self.error is not None:
            raise self.error
        return {
            "id": self.id, "object": "chat.completion", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": self.final_text}}],
            # Workers report no token counts; zero says "unknown" without breaking clients.
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }


def models_list(names: list[str]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "created": 0, "owned_by": "vision-chat"}
                 for n in names],
    }

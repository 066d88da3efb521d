"""A recording OpenAI-compatible server (a real HTTP peer on loopback) for the openai backend."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def chunk(content: str | None = None, finish_reason: str | None = None) -> dict[str, Any]:
    """One chat.completion.chunk with a content delta and/or a finish reason."""
    delta = {} if content is None else {"content": content}
    return {"object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


class FakeOpenAI:
    """Records every chat request; answers with `words`, or misbehaves as its flags say."""

    def __init__(self, models: tuple[str, ...] = ("InternVL3-8B",)) -> None:
        self.models = list(models)
        self.words = ["Hello", " there", "!"]
        self.error: tuple[int, dict[str, Any]] | None = None
        self.mid_stream_error: dict[str, Any] | None = None
        self.hang = False
        self.cut_after_words = False
        self.usage: dict[str, int] | None = None
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.started = threading.Semaphore(0)
        self.disconnected = threading.Event()
        self.app = FastAPI()

        @self.app.get("/v1/models")
        async def models_route() -> dict[str, Any]:
            return {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}

        @self.app.post("/v1/chat/completions")
        async def chat_route(request: Request) -> Any:
            self.bodies.append(await request.json())
            self.headers.append(dict(request.headers))
            if self.error is not None:
                status, body = self.error
                return JSONResponse(body, status_code=status)
            return StreamingResponse(self._events(), media_type="text/event-stream")

    async def _events(self) -> AsyncIterator[bytes]:
        def event(data: Any) -> bytes:
            return f"data: {json.dumps(data)}\n\n".encode()

        self.started.release()
        try:
            for index, word in enumerate(self.words):
                yield event(chunk(word))
                if self.hang and index == 0:
                    # Wait for the client to go away; Starlette cancels us when it does.
                    await asyncio.sleep(60)
            if self.cut_after_words:
                return
            if self.mid_stream_error is not None:
                yield event(self.mid_stream_error)
                return
            yield event(chunk(finish_reason="stop"))
            if self.usage is not None:
                yield event({"object": "chat.completion.chunk", "choices": [],
                             "usage": self.usage})
            yield b"data: [DONE]\n\n"
        except asyncio.CancelledError:
            self.disconnected.set()
            raise

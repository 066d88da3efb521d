"""`/worker_generate_stream` as a bare ASGI handler: the hot path skips the framework.

Starlette's routing, middleware wrappers and StreamingResponse cost several Python calls per
frame; the proxy forwards every frame of every answer, so this route talks ASGI directly. The
FastAPI route of the same path stays for the OpenAPI docs and behaves the same.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

STREAM_PATH = "/worker_generate_stream"
_STREAM_HEADERS = [(b"content-type", b"application/octet-stream")]


def parse_stream_request(body: bytes) -> tuple[str | None, str | None]:
    """(model, None) for a usable body, else (None, the problem in words)."""
    try:
        params = json.loads(body)
    except ValueError as exc:
        return None, f"body is not valid JSON: {exc}"
    if not isinstance(params, dict):
        return None, "body must be a JSON object"
    model = params.get("model")
    if not isinstance(model, str) or not model:
        return None, "model: a non-empty model name is required"
    return model, None


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away while sending the request")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


async def serve_stream(
    receive: Receive, send: Send, open_stream: Callable[[str, bytes], AsyncIterator[bytes]]
) -> None:
    """Answer one stream request; stop the upstream as soon as the client disconnects."""
    try:
        body = await read_body(receive)
    except ConnectionResetError:
        return
    model, problem = parse_stream_request(body)
    if problem is not None or model is None:
        await send_json(send, 422, {"detail": problem})
        return
    frames = open_stream(model, body)

    async def pump() -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
            async for chunk in frames:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await frames.aclose()

    async def wait_for_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    # Two tasks per stream (not per frame): the pump, and a listener that ends it when the
    # client leaves, so the worker's connection is closed and it stops generating.
    pumping = asyncio.ensure_future(pump())
    listening = asyncio.ensure_future(wait_for_disconnect())
    try:
        await asyncio.wait((pumping, listening), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pumping, listening):
            task.cancel()
        await asyncio.gather(pumping, listening, return_exceptions=True)
    if pumping.done() and not pumping.cancelled() and pumping.exception() is not None:
        raise pumping.exception()

"""The hot paths as bare ASGI handlers: streaming and dispatch skip the framework.

Starlette's routing, middleware wrappers and StreamingResponse cost several Python calls per
request and per frame. The proxy forwards every frame of every answer, and `/get_worker_address`
and `/list_models` are called once per chat request, so these talk ASGI directly. Their FastAPI
routes stay for the OpenAPI docs and answer anything unusual (a malformed body gets the same
4xx as on every other route).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from controller.errors import ControllerError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

STREAM_PATH = "/worker_generate_stream"
DISPATCH_PATHS = frozenset(("/get_worker_address", "/list_models"))
_STREAM_HEADERS = [(b"content-type", b"application/octet-stream")]


class HotPathBackend(Protocol):
    def check_prompt(self, params: dict[str, Any]) -> None: ...
    def generate_stream(self, model: str, body: bytes) -> AsyncIterator[bytes]: ...
    def list_models(self) -> list[str]: ...
    def get_worker_address(self, model: str) -> str: ...


def parse_stream_request(body: bytes) -> tuple[dict[str, Any], str]:
    """The params and model of a usable body; ValueError naming the problem otherwise."""
    try:
        params = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise ValueError("body must be a JSON object")
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("model: a non-empty model name is required")
    return params, model


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


async def serve_stream(receive: Receive, send: Send, backend: HotPathBackend) -> int:
    """Answer one stream request; stop the upstream as soon as the client disconnects.

    Returns the HTTP status sent (0 when the client left before a response).
    """
    try:
        body = await read_body(receive)
    except ConnectionResetError:
        return 0
    except ControllerError as exc:
        await send_json(send, exc.status_code, {"detail": str(exc)})
        return exc.status_code
    try:
        params, model = parse_stream_request(body)
        backend.check_prompt(params)
    except ValueError as exc:
        await send_json(send, 422, {"detail": str(exc)})
        return 422
    except ControllerError as exc:
        await send_json(send, exc.status_code, {"detail": str(exc)})
        return exc.status_code
    frames = backend.generate_stream(model, body)

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
    return 200


async def serve_dispatch(
    path: str, receive: Receive, send: Send, backend: HotPathBackend
) -> tuple[int, Receive]:
    """Answer a well-formed dispatch request: (status sent, receive).

    Status 0: not answered here; pass the request on with the returned receive, which replays
    the body already read. Status -1: the client left.
    """
    try:
        body = await read_body(receive)
    except ConnectionResetError:
        return -1, receive
    except ControllerError as exc:
        await send_json(send, exc.status_code, {"detail": str(exc)})
        return exc.status_code, receive
    if path == "/list_models":
        await send_json(send, 200, {"models": backend.list_models()})
        return 200, receive
    try:
        params = json.loads(body) if body else None
    except ValueError:
        params = None
    model = params.get("model") if isinstance(params, dict) else None
    if isinstance(model, str):
        await send_json(send, 200, {"address": backend.get_worker_address(model)})
        return 200, receive
    replayed = False

    async def replay() -> dict[str, Any]:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return 0, replay

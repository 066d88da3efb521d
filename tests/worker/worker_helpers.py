"""Helpers for worker tests: request builders, frame readers and a recording controller."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image

from protocol.frames import iter_frames
from worker.settings import WorkerSettings

TIMEOUT_S = 10.0


def chat(question: str, **params: Any) -> dict[str, Any]:
    """InternVL-style generation params with one user question."""
    return {
        "model": params.pop("model", "any"),
        "prompt": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": question, **params.pop("extra", {})},
        ],
        "temperature": 0.0,
        "top_p": 1.0,
        "max_new_tokens": 64,
        "repetition_penalty": 1.0,
        "max_input_tiles": 6,
        **params,
    }


def png_base64(width: int, height: int, image_format: str = "PNG") -> str:
    """A solid-colour test image, base64-encoded like the chat page sends it."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format=image_format)
    return base64.b64encode(buffer.getvalue()).decode()


def post_frames(url: str, payload: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """POST to /worker_generate_stream and decode every frame of the answer."""
    data = payload if isinstance(payload, bytes | str) else None
    json_body = None if data is not None else payload
    with requests.post(
        f"{url}/worker_generate_stream", json=json_body, data=data, stream=True,
        timeout=kwargs.pop("timeout", TIMEOUT_S), **kwargs,
    ) as response:
        assert response.status_code == 200, response.text
        return list(iter_frames(response.iter_content(chunk_size=None)))


def get_status(url: str) -> dict[str, Any]:
    """The worker's /worker_get_status answer."""
    response = requests.post(f"{url}/worker_get_status", timeout=TIMEOUT_S)
    response.raise_for_status()
    return response.json()


def wait_until(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
    """Poll a condition observed over HTTP until it holds; fail with a clear message if not."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.01)


def worker_settings(**overrides: Any) -> WorkerSettings:
    """Settings for a test worker: no registration unless a controller address is given."""
    values: dict[str, Any] = {"host": "127.0.0.1", "no_register": True, "backend": "simulated"}
    values.update(overrides)
    return WorkerSettings(**values)


class FakeController:
    """A minimal controller that records registrations and heartbeats (a real HTTP peer)."""

    def __init__(self, required_token: str | None = None) -> None:
        self.required_token = required_token
        self.rejected = 0
        self.registrations: list[dict[str, Any]] = []
        self.heart_beats: list[dict[str, Any]] = []
        self.known: set[str] = set()
        self._changed = threading.Condition()
        self.app = FastAPI()

        @self.app.post("/register_worker")
        async def register_worker(request: Request) -> Any:
            if self.required_token and (
                request.headers.get("authorization") != f"Bearer {self.required_token}"
            ):
                with self._changed:
                    self.rejected += 1
                    self._changed.notify_all()
                return JSONResponse({"detail": "worker token required"}, status_code=401)
            body = await request.json()
            with self._changed:
                self.registrations.append(body)
                self.known.add(body["worker_name"])
                self._changed.notify_all()
            return {"registered": True, "worker_name": body["worker_name"]}

        @self.app.post("/receive_heart_beat")
        async def receive_heart_beat(request: Request) -> dict[str, Any]:
            body = await request.json()
            with self._changed:
                self.heart_beats.append(body)
                self._changed.notify_all()
                return {"exist": body["worker_name"] in self.known}

    def forget(self, worker_name: str) -> None:
        """Drop a worker, as an expiry sweep would."""
        with self._changed:
            self.known.discard(worker_name)

    def wait_for(self, condition: Callable[[FakeController], bool]) -> None:
        """Block until a registration or heartbeat makes the condition true."""
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self), timeout=TIMEOUT_S):
                raise AssertionError(
                    f"controller condition not met within {TIMEOUT_S} s: "
                    f"{len(self.registrations)} registrations, {len(self.heart_beats)} heartbeats"
                )

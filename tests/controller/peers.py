"""Real small servers that play workers for the controller tests (they speak HTTP on loopback).

They stand in for GPU model workers, which cannot run here; the protocol they speak is the real
one, byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from controller.server import BackgroundServer
from protocol.frames import encode_frame


@dataclass
class WorkerBehaviour:
    """What a scripted worker does; tests change it while the worker runs."""

    model_names: list[str] = field(default_factory=lambda: ["test-model"])
    speed: float = 1
    queue_length: int = 0
    multimodal: bool = False
    words: int = 5
    # Set by a test to hold a stream before its first frame / after its first frame.
    hold_before_first: threading.Event | None = None
    hold_after_first: threading.Event | None = None
    die_after_frames: int | None = None
    status_code: int = 200


class ScriptedWorker:
    """A worker on a loopback port whose answers a test scripts; records what it saw."""

    def __init__(self, behaviour: WorkerBehaviour | None = None) -> None:
        self.behaviour = behaviour or WorkerBehaviour()
        self.requests: list[dict] = []
        self.streams_started = 0
        self.streams_closed = 0
        self.closed_event = threading.Event()
        self.server = BackgroundServer(self._app(), thread_name="scripted-worker")

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> ScriptedWorker:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for event in (self.behaviour.hold_before_first, self.behaviour.hold_after_first):
            if event is not None:
                event.set()
        self.server.stop()

    def status(self) -> dict:
        b = self.behaviour
        return {
            "model_names": b.model_names,
            "speed": b.speed,
            "queue_length": b.queue_length,
            "multimodal": b.multimodal,
        }

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/worker_get_status")
        async def worker_get_status() -> dict:
            return self.status()

        @app.post("/worker_generate_stream")
        async def worker_generate_stream(request: Request):
            params = await request.json()
            self.requests.append(params)
            b = self.behaviour
            if b.status_code != 200:
                from fastapi.responses import PlainTextResponse

                return PlainTextResponse("scripted failure", status_code=b.status_code)
            return StreamingResponse(self._frames(params, request))

        return app

    async def _frames(self, params: dict, request: Request) -> AsyncIterator[bytes]:
        b = self.behaviour
        self.streams_started += 1
        try:
            if b.hold_before_first is not None:
                await asyncio.to_thread(b.hold_before_first.wait)
            text = ""
            for i in range(b.words):
                if b.die_after_frames is not None and i == b.die_after_frames:
                    raise ConnectionAbortedError("scripted death mid-stream")
                text += f"word{i} "
                yield encode_frame(text)
                if i == 0 and b.hold_after_first is not None:
                    await asyncio.to_thread(b.hold_after_first.wait)
                await asyncio.sleep(0.005)
        finally:
            self.streams_closed += 1
            self.closed_event.set()


class HungWorker:
    """Accepts TCP connections and never answers a byte (a wedged process)."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="hung-worker", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def __enter__(self) -> HungWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._held:
            conn.close()
        self._listener.close()


def register(controller_url: str, worker_url: str, status: dict | None = None,
             check_heart_beat: bool = True) -> None:
    """Register the way the original workers do (requests, json=...)."""
    import requests

    body = {"worker_name": worker_url, "check_heart_beat": check_heart_beat}
    if status is not None:
        body["worker_status"] = status
    response = requests.post(controller_url + "/register_worker", json=body, timeout=10)
    assert response.status_code == 200, response.text


def read_frames(response) -> list[dict]:
    """All frames of a streamed answer, the way the InternVL client splits them."""
    return [json.loads(line) for line in response.iter_lines(delimiter=b"\0") if line]

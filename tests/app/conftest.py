"""Fixtures for app tests: a real controller and real simulated workers on loopback ports."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from controller.api import create_app as create_controller_app
from controller.server import BackgroundServer, free_port
from controller.settings import ControllerSettings
from worker.api import create_app as create_worker_app
from worker.backends.simulated import SimulatedBackend
from worker.settings import WorkerSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 15.0


def wait_until(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
    """Poll `condition` until true; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.05)


def registered(controller_url: str) -> set[str]:
    workers = requests.get(f"{controller_url}/workers", timeout=5).json()["workers"]
    return {w["address"] for w in workers}


def register_fake_worker(
    controller_url: str, address: str, models: list[str], *, multimodal: bool = False,
    check_heart_beat: bool = False, queue_length: int = 0,
) -> None:
    """Register an address nobody listens on, with its status given (the controller asks none)."""
    resp = requests.post(f"{controller_url}/register_worker", json={
        "worker_name": address,
        "check_heart_beat": check_heart_beat,
        "worker_status": {"model_names": models, "speed": 1, "queue_length": queue_length,
                          "multimodal": multimodal},
    }, timeout=5)
    resp.raise_for_status()


def png_bytes(width: int = 320, height: int = 200, color: str = "skyblue",
              image_format: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format=image_format)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels: what a decompression bomb shows first."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


@pytest.fixture
def controller() -> Iterator[str]:
    """A real controller on a free loopback port; yields its URL.

    Short expiry (late after 2 s) so tests see late workers; test workers beat every second.
    """
    settings = ControllerSettings(
        host="127.0.0.1", port=free_port(), heart_beat_expiration_s=4.0,
        sweep_interval_s=0.5, stats_interval_s=1.0,
    )
    server = BackgroundServer(
        create_controller_app(settings), "127.0.0.1", settings.port, thread_name="test-controller"
    )
    with server:
        yield server.url


@pytest.fixture
def start_worker(controller: str) -> Iterator[Callable[..., str]]:
    """Start real simulated workers (in threads); each registers itself unless told not to."""
    servers: list[BackgroundServer] = []

    def start(*, multimodal: bool = False, register: bool = True, **backend: Any) -> str:
        port = free_port()
        address = f"http://127.0.0.1:{port}"
        settings = WorkerSettings(
            host="127.0.0.1", port=port, worker_address=address, controller_address=controller,
            backend="simulated", multimodal=multimodal, no_register=not register,
            heart_beat_interval_s=1.0,
        )
        backend.setdefault("tokens_per_s", 500.0)
        backend.setdefault("time_to_first_token_s", 0.0)
        app = create_worker_app(settings, SimulatedBackend(multimodal=multimodal, **backend))
        server = BackgroundServer(app, "127.0.0.1", port, thread_name="test-worker")
        servers.append(server.start())
        if register:
            wait_until(lambda: address in registered(controller))
        return address

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, controller: str) -> Path:
    """Point the pages at the test controller and a fresh log folder; returns the log folder."""
    for name in ("APP_ADMIN_PASSWORD", "APP_MAX_IMAGES", "APP_ADMIN_REFRESH",
                 "APP_MAX_IMAGE_BYTES", "APP_MAX_IMAGE_PIXELS", "APP_MAX_PROMPT_CHARS",
                 "CONTROLLER_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_CONTROLLER_URL", controller)
    monkeypatch.setenv("APP_LOG_DIR", str(tmp_path / "logs"))
    return tmp_path / "logs"

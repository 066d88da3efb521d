"""Fixtures for worker tests: workers and a small recording controller on loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.server import BackgroundServer, free_port
from tests.worker.worker_helpers import FakeController, worker_settings
from worker.api import create_app
from worker.backends.base import AsyncBackend, Backend
from worker.backends.simulated import SimulatedBackend


@pytest.fixture
def start_worker() -> Iterator[Callable[..., BackgroundServer]]:
    """Start workers on free loopback ports; all are stopped after the test."""
    servers: list[BackgroundServer] = []

    # Positional-only, so `backend="openai"` can still name the settings field.
    def start(model: Backend | AsyncBackend | None = None, /, **overrides: Any) -> BackgroundServer:
        port = overrides.pop("port", None) or free_port()
        overrides.setdefault("worker_address", f"http://127.0.0.1:{port}")
        settings = worker_settings(port=port, **overrides)
        model = model or SimulatedBackend(tokens_per_s=1000.0, time_to_first_token_s=0.0)
        app = create_app(settings, model)
        server = BackgroundServer(app, "127.0.0.1", port, thread_name="test-worker")
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def start_fake_controller() -> Iterator[Callable[..., tuple[FakeController, BackgroundServer]]]:
    """Start recording controllers on given ports; all are stopped after the test."""
    servers: list[BackgroundServer] = []

    def start(port: int, **options: Any) -> tuple[FakeController, BackgroundServer]:
        controller = FakeController(**options)
        server = BackgroundServer(controller.app, "127.0.0.1", port, thread_name="fake-controller")
        servers.append(server.start())
        return controller, server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def start_controller() -> Iterator[Callable[..., BackgroundServer]]:
    """Start real controllers (controller.api) on loopback ports; all are stopped after."""
    from controller.api import create_app as create_controller_app
    from controller.settings import ControllerSettings

    servers: list[BackgroundServer] = []

    def start(port: int | None = None, **overrides: Any) -> BackgroundServer:
        port = port or free_port()
        settings = ControllerSettings(host="127.0.0.1", port=port, **overrides)
        server = BackgroundServer(
            create_controller_app(settings), "127.0.0.1", port, thread_name="test-controller"
        )
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()

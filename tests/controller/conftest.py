"""Fixtures: a real controller on a loopback port, and scripted workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from controller.api import create_app
from controller.registry import Registry
from controller.server import BackgroundServer, free_port
from controller.settings import ControllerSettings
from tests.controller.peers import ScriptedWorker, WorkerBehaviour


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


StartController = Callable[..., BackgroundServer]


@pytest.fixture
def start_controller() -> Iterator[StartController]:
    """Start controllers with setting overrides (and optionally a registry); stopped after."""
    with ExitStack() as stack:

        def start(registry: Registry | None = None, **overrides: object) -> BackgroundServer:
            port = free_port()
            settings = ControllerSettings(host="127.0.0.1", port=port, **overrides)
            server = BackgroundServer(create_app(settings, registry=registry), port=port,
                                      thread_name="test-controller")
            return stack.enter_context(server)

        yield start


@pytest.fixture
def controller_url(start_controller: StartController) -> str:
    return start_controller(status_timeout_s=2.0, first_frame_timeout_s=3.0,
                            idle_timeout_s=3.0).url


@pytest.fixture
def start_worker() -> Iterator[Callable[..., ScriptedWorker]]:
    with ExitStack() as stack:

        def start(**behaviour: object) -> ScriptedWorker:
            return stack.enter_context(ScriptedWorker(WorkerBehaviour(**behaviour)))

        yield start

"""Run an ASGI app with uvicorn in a background daemon thread: start, wait until ready, stop."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn


class ServerStartError(RuntimeError):
    """The server did not come up (port in use, bad host, crash during start-up)."""


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (checked by binding, as uvicorn will)."""
    bind_host = "0.0.0.0" if host in ("", "0.0.0.0") else host
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bind_host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now (for tests and embedded workers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class BackgroundServer:
    """One uvicorn server in one named daemon thread, with its own event loop."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        thread_name: str = "uvicorn-server",
        log_level: str = "warning",
        **uvicorn_options: Any,
    ) -> None:
        self.host = host
        self.port = port or free_port(host if host not in ("", "0.0.0.0") else "127.0.0.1")
        self.thread_name = thread_name
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            log_level=log_level,
            loop="auto",
            http="auto",
            lifespan="on",
            **uvicorn_options,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL a client on this machine uses to reach the server."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._server.started

    def start(self, timeout_s: float = 30.0) -> BackgroundServer:
        """Start the thread and return once the socket accepts connections."""
        if not port_is_free(self.host, self.port):
            raise ServerStartError(
                f"port {self.port} on {self.host or '0.0.0.0'} is already in use; "
                "stop the other process or choose another port"
            )
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                cause = f": {self._error!r}" if self._error else ""
                raise ServerStartError(
                    f"server on {self.host}:{self.port} stopped during start-up{cause}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"server on {self.host}:{self.port} not ready in {timeout_s} s"
                )
            # Event-free polling: uvicorn exposes readiness only as a flag.
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        try:
            # uvicorn installs signal handlers only in the main thread; this is not it.
            asyncio.run(self._server.serve())
        except BaseException as exc:  # incl. SystemExit from a failed bind; start() reports it
            self._error = exc

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout_s)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

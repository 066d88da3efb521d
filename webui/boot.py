"""Start the controller and the workers once per process, and stop them at exit."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from controller.server import BackgroundServer, ServerStartError
from controller.settings import ControllerSettings, SettingsError
from webui.client import ControllerClient, ControllerError
from webui.settings import AppSettings, AppSettingsError, parse_settings
from webui.workers import WorkerProcess

CONTROLLER_THREAD = "vision-chat-controller"
# The runtime hangs on this thread: module globals are lost when Streamlit's file watcher
# re-imports modules, the thread list of the process is not.
SUPERVISOR_THREAD = "vision-chat-supervisor"
SUPERVISE_INTERVAL_S = 0.5

log = logging.getLogger(__name__)
_boot_lock = threading.Lock()


@dataclass(frozen=True)
class Notice:
    """Something the pages show above their content: level is error, warning or info."""

    level: str
    text: str


class AppRuntime:
    """The controller and child workers of this process, and what went wrong starting them."""

    def __init__(self, settings: AppSettings, notices: list[Notice] | None = None) -> None:
        self.settings = settings
        self.controller_url = settings.local_controller_url
        self.server: BackgroundServer | None = None
        self.workers: list[WorkerProcess] = []
        self.notices: list[Notice] = list(notices or [])
        self._stop = threading.Event()
        self._stopped = False

    def start(self) -> None:
        """Boot the controller (unless external) and spawn the workers; does not wait for them."""
        if any(n.level == "error" for n in self.notices):
            return
        if self.settings.boots_controller and not self._start_controller():
            return
        if not self.settings.boots_controller:
            try:
                ControllerClient(self.controller_url, timeout_s=3.0).health()
            except ControllerError as exc:
                self.notices.append(Notice("warning", str(exc)))
        self._spawn_workers()

    def _start_controller(self) -> bool:
        try:
            controller_settings = ControllerSettings.from_env().replace(
                host=self.settings.controller_host,
                port=self.settings.controller_port,
                dispatch_method=self.settings.dispatch_method,
                # --registry-url wins over CONTROLLER_REGISTRY_URL, which from_env read.
                registry_url=self.settings.registry_url or None,
            )
        except (SettingsError, SystemExit) as exc:
            self.notices.append(Notice("error", f"invalid CONTROLLER_* setting: {exc}"))
            return False
        # Imported here: FastAPI must never be built in app.py, and the pages never need it.
        from controller.api import create_app

        self.server = BackgroundServer(
            create_app(controller_settings),
            controller_settings.host,
            controller_settings.port,
            thread_name=CONTROLLER_THREAD,
            log_level="warning",
        )
        try:
            self.server.start()
        except ServerStartError as exc:
            self.server = None
            self.notices.append(Notice(
                "error",
                f"The controller could not start: {exc}. Set another port with "
                "`streamlit run app.py -- --controller-port N` (or CONTROLLER_PORT), or use a "
                "running controller with `--controller-url URL`.",
            ))
            return False
        registry = "redis" if controller_settings.registry_url else "memory"
        log.info("controller on %s:%s, registry %s", controller_settings.host,
                 controller_settings.port, registry)
        return True

    def _spawn_workers(self) -> None:
        settings = self.settings
        # The controller's worker token, else its admin token (which opens everything).
        token = os.environ.get("CONTROLLER_WORKER_TOKEN") or settings.controller_token
        if settings.embedded_worker:
            self.workers.append(WorkerProcess(
                "embedded", settings.worker_backend, self.controller_url, settings.log_dir,
                controller_token=token,
            ))
        for i in range(settings.simulated_workers):
            # Every other simulated worker takes images, so a demo has both kinds.
            self.workers.append(WorkerProcess(
                f"simulated-{i + 1}", "simulated", self.controller_url, settings.log_dir,
                multimodal=i % 2 == 0, controller_token=token,
            ))
        for worker in self.workers:
            worker.start()

    def supervise(self) -> None:
        """Follow the workers' start-up until stopped (runs in the supervisor thread)."""
        client = ControllerClient(self.controller_url, timeout_s=3.0)
        while not self._stop.wait(SUPERVISE_INTERVAL_S):
            pending = [w for w in self.workers if w.state in ("starting", "ready")]
            if not pending:
                continue
            try:
                registered = {w["address"] for w in client.workers()["workers"]}
            except (ControllerError, KeyError, TypeError):
                continue
            for worker in pending:
                worker.update(registered)

    def stop(self) -> None:
        """Stop the workers, then the controller; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.wait_stopped()
        if self.server is not None:
            self.server.stop()

    def worker_notices(self) -> list[Notice]:
        """What the pages say about the child workers right now."""
        notices = []
        for worker in self.workers:
            if worker.state == "failed":
                notices.append(Notice(
                    "error", f"Worker {worker.name} ({worker.backend}) failed to start: "
                    f"{worker.detail} (full log: {worker.log_path})"
                ))
            elif worker.state == "starting":
                notices.append(
                    Notice("info", f"Worker {worker.name} ({worker.backend}) is starting…")
                )
        return notices


def current_runtime() -> AppRuntime | None:
    """The runtime booted in this process, if any."""
    for thread in threading.enumerate():
        if thread.name == SUPERVISOR_THREAD:
            return getattr(thread, "app_runtime", None)
    return None


def ensure_started(argv: list[str] | None = None) -> AppRuntime:
    """Boot once per process (later calls return the same runtime)."""
    runtime = current_runtime()
    if runtime is not None:
        return runtime
    with _boot_lock:
        runtime = current_runtime()
        if runtime is not None:
            return runtime
        try:
            settings = parse_settings(sys.argv[1:] if argv is None else argv)
            runtime = AppRuntime(settings)
        except AppSettingsError as exc:
            runtime = AppRuntime(AppSettings(), [Notice("error", f"Invalid app option: {exc}")])
        runtime.start()
        thread = threading.Thread(target=runtime.supervise, name=SUPERVISOR_THREAD, daemon=True)
        thread.app_runtime = runtime  # type: ignore[attr-defined]
        thread.start()
        # For `streamlit run` without st.App (no lifespan); stop() is idempotent.
        atexit.register(runtime.stop)
        return runtime


def controller_url() -> str:
    """The controller the pages talk to: the booted one, else the configured one."""
    runtime = current_runtime()
    if runtime is not None:
        return runtime.controller_url
    try:
        return parse_settings([]).local_controller_url
    except AppSettingsError:
        return AppSettings().local_controller_url


def app_settings() -> AppSettings:
    """The settings of the booted runtime, else those from the environment."""
    runtime = current_runtime()
    if runtime is not None:
        return runtime.settings
    try:
        return parse_settings([])
    except AppSettingsError:
        return AppSettings()


@contextlib.asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """st.App lifespan: boot when the Streamlit server starts, stop when it stops."""
    # Off the event loop: the controller start waits on a socket, Streamlit's loop must not.
    runtime = await asyncio.to_thread(ensure_started)
    for notice in runtime.notices:
        log.log(logging.ERROR if notice.level == "error" else logging.WARNING, notice.text)
    try:
        yield
    finally:
        await asyncio.to_thread(runtime.stop)

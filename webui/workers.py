"""Model workers started by the app as child processes, and their start-up state."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from controller.server import free_port
from webui.settings import REPO_ROOT

# Loading SmolLM2 takes well under a second; importing llama.cpp and FastAPI a few more.
REGISTER_TIMEOUT_S = 120.0


class WorkerProcess:
    """One `python -m worker` child: start, watch until registered, stop."""

    def __init__(
        self,
        name: str,
        backend: str,
        controller_url: str,
        log_dir: Path,
        *,
        multimodal: bool = False,
        controller_token: str | None = None,
    ) -> None:
        self.name = name
        self.backend = backend
        self.controller_url = controller_url
        self.multimodal = multimodal
        self.controller_token = controller_token
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_dir) / "workers" / f"{name}.log"
        self.state = "not started"
        self.detail = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0

    @property
    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "worker",
            "--backend", self.backend,
            "--controller-address", self.controller_url,
            "--port", str(self.port),
            "--host", "127.0.0.1",
            "--worker-address", self.address,
        ]
        return [*cmd, "--multimodal"] if self.multimodal else cmd

    def start(self) -> None:
        """Spawn the child; returns at once, readiness is seen later by `update`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        if self.controller_token and not env.get("WORKER_CONTROLLER_TOKEN"):
            # Via the environment, not argv: a token on a command line is visible in `ps`.
            env["WORKER_CONTROLLER_TOKEN"] = self.controller_token
        try:
            with self.log_path.open("wb") as log:
                self._proc = subprocess.Popen(
                    self.command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT,
                    # Own process group: a Ctrl-C in the terminal reaches Streamlit, which then
                    # stops the workers in order instead of them dying mid-registration.
                    start_new_session=True,
                )
        except OSError as exc:
            self.state, self.detail = "failed", f"could not start {self.command[0]}: {exc}"
            return
        self._started_at = time.monotonic()
        self.state, self.detail = "starting", ""

    def update(self, registered: set[str]) -> None:
        """Move from starting to ready or failed, given the addresses the controller knows."""
        if self._proc is None or self.state in ("failed", "stopped"):
            return
        code = self._proc.poll()
        if code is not None:
            self.state = "failed"
            self.detail = f"exited with code {code}: {self.log_tail()}"
        elif self.address in registered:
            self.state, self.detail = "ready", ""
        elif self.state == "ready":
            # Dropped by the controller (e.g. after a refresh); the worker registers again itself.
            self.state = "starting"
            self._started_at = time.monotonic()
        elif time.monotonic() - self._started_at > REGISTER_TIMEOUT_S:
            self.state = "failed"
            self.detail = (
                f"not registered with the controller after {REGISTER_TIMEOUT_S:.0f} s: "
                f"{self.log_tail()}"
            )

    def log_tail(self, max_chars: int = 600) -> str:
        """The end of the worker's output, where Python puts the cause of a failed start."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no output)"
        lines = [line for line in text.strip().splitlines() if line.strip()]
        tail = " | ".join(lines[-4:])
        return tail[-max_chars:] or "(no output)"

    def terminate(self) -> None:
        """Ask the child to stop (SIGTERM) without waiting."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def wait_stopped(self, timeout_s: float = 5.0) -> None:
        """Wait for the child, killing it when it ignores SIGTERM."""
        if self._proc is None:
            return
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout_s)
        self.state = "stopped"

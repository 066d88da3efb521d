"""Helpers for the browser tests and the screenshot script: a real `streamlit run app.py`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from controller.server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


@dataclass
class RunningApp:
    """A `streamlit run app.py` child process and where to reach it."""

    url: str
    controller_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float


def _wait_healthy(app: RunningApp, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"streamlit exited: {app.log_path.read_text()[-2000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{app.url}/_stcore/health", timeout=1).text == "ok":
                return
        time.sleep(0.1)
    raise RuntimeError(f"streamlit not healthy in {timeout_s} s: {app.log_path.read_text()}")


@contextlib.contextmanager
def streamlit_app(
    tmp_dir: Path, *app_args: str, timeout_s: float = 60.0, env: dict[str, str] | None = None
) -> Iterator[RunningApp]:
    """Run the app on free ports; stop it (SIGTERM, as a service manager would) afterwards."""
    port, controller_port = free_port(), free_port()
    log_path = tmp_dir / "streamlit.log"
    extra_env = env or {}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("APP_", "CONTROLLER_", "WORKER_"))}
    env["APP_LOG_DIR"] = str(tmp_dir / "logs")
    env.update(extra_env)
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false", "--server.port", str(port),
        "--client.showErrorDetails", "full",
        "--", "--controller-host", "127.0.0.1", "--controller-port", str(controller_port),
        *app_args,
    ]
    with log_path.open("wb") as log:
        started_at = time.monotonic()
        process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    app = RunningApp(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{controller_port}",
                     process, log_path, started_at)
    try:
        _wait_healthy(app, timeout_s)
        yield app
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_idle(page, timeout_ms: float = 30_000) -> None:  # type: ignore[no-untyped-def]
    """Wait until Streamlit has finished running the script for this page."""
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def send_chat(page, text: str, files: list[Path] | None = None) -> None:  # type: ignore[no-untyped-def]
    """Type a chat message (with optional files) and send it."""
    if files:
        page.locator("[data-testid='stChatInput'] input[type='file']").set_input_files(
            [str(f) for f in files]
        )
        page.wait_for_selector("[data-testid='stFileChip']", timeout=10_000)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")


def pick_model(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """Choose a model in the sidebar picker."""
    page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name=name, exact=True).click()

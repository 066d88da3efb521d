"""`python -m worker` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from controller.server import free_port
from tests.worker.worker_helpers import TIMEOUT_S, wait_until

REPO = Path(__file__).resolve().parents[2]


def worker_process(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def answers(url: str) -> bool:
    try:
        return requests.post(f"{url}/worker_get_status", timeout=1).ok
    except requests.ConnectionError:
        return False


def test_simulated_worker_process_serves_and_stops_on_sigint():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = worker_process(
        "--host", "127.0.0.1", "--port", str(port), "--no-register",
        WORKER_BACKEND="simulated", WORKER_MULTIMODAL="1",
    )
    try:
        wait_until(lambda: answers(url) or process.poll() is not None, timeout_s=30)
        status = requests.post(f"{url}/worker_get_status", timeout=TIMEOUT_S).json()
        assert status["model_names"] == ["simulated-vision"]
        assert status["multimodal"] is True
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, output


def test_missing_model_file_exits_with_a_clear_message():
    process = worker_process("--no-register", "--model-path", "/nonexistent/model.gguf")
    output, _ = process.communicate(timeout=60)

    assert process.returncode == 2
    assert "model.gguf" in output or "llama-cpp-python" in output

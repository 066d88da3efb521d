"""Fault injection with real processes: workers killed mid-stream, controller restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from controller.server import free_port
from tests.controller.peers import read_frames

REPO = Path(__file__).resolve().parents[2]


def start_process(module: str, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=REPO, env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_for(condition, what: str, limit_s: float = 30) -> None:
    """Poll a condition on processes we do not control (no event to wait on)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def models(url: str) -> list[str]:
    return requests.post(url + "/list_models", timeout=2).json()["models"]


def test_worker_killed_mid_stream_gives_one_error_frame_naming_it() -> None:
    controller_port, worker_port = free_port(), free_port()
    controller_url = f"http://127.0.0.1:{controller_port}"
    worker_url = f"http://127.0.0.1:{worker_port}"
    controller = start_process("controller", "--host", "127.0.0.1", "--port",
                               str(controller_port), "--log-level", "warning")
    worker = start_process(
        "worker", "--host", "127.0.0.1", "--port", str(worker_port),
        "--worker-address", worker_url, "--controller-address", controller_url,
        WORKER_BACKEND="simulated", WORKER_TOKENS_PER_S="20", WORKER_ANSWER_TOKENS="400",
        WORKER_TIME_TO_FIRST_TOKEN_S="0",
    )
    try:
        wait_for(lambda: models(controller_url) == ["simulated-chat"], "registration")
        response = requests.post(
            controller_url + "/worker_generate_stream", stream=True, timeout=30,
            json={"model": "simulated-chat", "prompt": [{"role": "user", "content": "hi"}]},
        )
        lines = response.iter_lines(delimiter=b"\0")
        first = next(lines)
        assert b'"error_code": 0' in first
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        frames = read_frames_from(lines)
        errors = [f for f in frames if f["error_code"] != 0]
        assert len(errors) == 1 and frames[-1] is errors[0]
        assert worker_url in errors[0]["text"]
    finally:
        worker.kill()
        controller.terminate()
        controller.wait(10)


def read_frames_from(lines) -> list[dict]:
    return [json.loads(line) for line in lines if line]


def test_worker_re_registers_within_one_heartbeat_after_a_controller_restart() -> None:
    controller_port, worker_port = free_port(), free_port()
    controller_url = f"http://127.0.0.1:{controller_port}"
    worker_url = f"http://127.0.0.1:{worker_port}"
    args = ("--host", "127.0.0.1", "--port", str(controller_port), "--log-level", "warning")
    controller = start_process("controller", *args)
    worker = start_process(
        "worker", "--host", "127.0.0.1", "--port", str(worker_port),
        "--worker-address", worker_url, "--controller-address", controller_url,
        WORKER_BACKEND="simulated", WORKER_HEART_BEAT_INTERVAL_S="1",
    )
    try:
        wait_for(lambda: models(controller_url) == ["simulated-chat"], "registration")
        controller.terminate()
        controller.wait(10)
        restarted_at = time.monotonic()
        controller = start_process("controller", *args)
        wait_for(lambda: models(controller_url) == ["simulated-chat"], "re-registration",
                 limit_s=20)
        seconds = time.monotonic() - restarted_at
        print(f"\nworker re-registered {seconds:.1f} s after the controller restarted "
              "(heartbeat interval 1 s, controller start included)")
        response = requests.post(
            controller_url + "/worker_generate_stream", stream=True, timeout=30,
            json={"model": "simulated-chat", "prompt": [{"role": "user", "content": "hi"}]},
        )
        frames = read_frames(response)
        assert frames and all(f["error_code"] == 0 for f in frames)
    finally:
        worker.terminate()
        worker.wait(10)
        controller.terminate()
        controller.wait(10)

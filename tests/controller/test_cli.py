"""The standalone controller, started as a user starts it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import requests

from controller.server import free_port, port_is_free


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "controller", *args],
        env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_list_models(url: str, process: subprocess.Popen, limit_s: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        assert process.poll() is None, process.stdout.read()
        try:
            answer = requests.post(url + "/list_models", timeout=1)
        except requests.ConnectionError:
            time.sleep(0.05)  # polling a process we do not control; no event to wait on
            continue
        assert answer.json() == {"models": []}
        return time.perf_counter() - started
    raise AssertionError(f"no answer from {url} within {limit_s} s")


def test_standalone_cli_answers_list_models_with_its_defaults() -> None:
    # The defaults themselves (0.0.0.0:10075) when that port is free, as a user would run it.
    use_defaults = port_is_free("0.0.0.0", 10075)
    port = 10075 if use_defaults else free_port()
    process = _start([] if use_defaults else ["--port", str(port)])
    try:
        seconds = _wait_for_list_models(f"http://127.0.0.1:{port}", process, 15)
        print(f"\nstandalone controller answered /list_models {seconds:.2f} s after start")
    finally:
        process.terminate()
        process.wait(10)
    assert process.returncode in (0, -15)


def test_port_already_in_use_is_reported_clearly() -> None:
    port = free_port()
    first = _start(["--port", str(port), "--host", "127.0.0.1"])
    try:
        _wait_for_list_models(f"http://127.0.0.1:{port}", first, 15)
        second = _start(["--port", str(port), "--host", "127.0.0.1"])
        output, _ = second.communicate(timeout=30)
        assert second.returncode == 2
        assert f"port {port}" in output and "already in use" in output
    finally:
        first.terminate()
        first.wait(10)


def test_environment_variables_configure_the_cli() -> None:
    port = free_port()
    process = _start([], {"CONTROLLER_PORT": str(port), "CONTROLLER_HOST": "127.0.0.1",
                          "CONTROLLER_DISPATCH_METHOD": "lottery"})
    try:
        _wait_for_list_models(f"http://127.0.0.1:{port}", process, 15)
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert health["dispatch_method"] == "lottery"
    finally:
        process.terminate()
        process.wait(10)

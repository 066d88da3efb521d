"""Boot of the controller and child workers: once per process, clear failures, clean stop."""

from __future__ import annotations

import asyncio
import importlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from controller.server import free_port, port_is_free
from tests.app.conftest import wait_until
from webui import boot


def controller_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == boot.CONTROLLER_THREAD]


@pytest.fixture
def argv(tmp_path: Path) -> Iterator[list[str]]:
    """App options for a loopback controller on a free port; the runtime is stopped after."""
    yield ["--controller-host", "127.0.0.1", "--controller-port", str(free_port()),
           "--log-dir", str(tmp_path), "--no-embedded-worker"]
    runtime = boot.current_runtime()
    if runtime is not None:
        runtime.stop()
        wait_until(lambda: boot.current_runtime() is None)


def test_controller_starts_once_per_process(argv: list[str]) -> None:
    runtime = boot.ensure_started(argv)
    assert boot.ensure_started(argv) is runtime
    # The file watcher re-imports modules; the runtime hangs on a thread, not a module global.
    reloaded = importlib.reload(boot)
    assert reloaded.ensure_started(argv) is runtime
    assert len(controller_threads()) == 1
    assert requests.get(f"{runtime.controller_url}/health", timeout=5).json()["status"] == "ok"
    assert not runtime.notices


def test_workers_start_register_and_stop_with_the_app(argv: list[str]) -> None:
    runtime = boot.ensure_started([*argv, "--simulated-workers", "2"])
    wait_until(lambda: all(w.state == "ready" for w in runtime.workers), timeout_s=60)
    models = requests.post(f"{runtime.controller_url}/list_models", timeout=5).json()["models"]
    assert sorted(models) == ["simulated-chat", "simulated-vision"]
    port = int(runtime.controller_url.rsplit(":", 1)[1])
    runtime.stop()
    assert all(w.state == "stopped" for w in runtime.workers)
    assert all(port_is_free("127.0.0.1", w.port) for w in runtime.workers)
    assert port_is_free("127.0.0.1", port)


def test_port_in_use_is_a_notice_not_a_traceback(argv: list[str]) -> None:
    port = int(argv[argv.index("--controller-port") + 1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        runtime = boot.ensure_started([*argv, "--simulated-workers", "1"])
    [notice] = runtime.notices
    assert notice.level == "error"
    assert f"port {port}" in notice.text and "already in use" in notice.text
    assert not runtime.workers


def test_failed_worker_start_names_the_cause(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_MODEL_PATH", "/nonexistent/model.gguf")
    argv = [a for a in argv if a != "--no-embedded-worker"]
    runtime = boot.ensure_started(argv)
    [worker] = runtime.workers
    wait_until(lambda: worker.state == "failed", timeout_s=60)
    [notice] = runtime.worker_notices()
    assert notice.level == "error"
    assert "embedded" in notice.text and "/nonexistent/model.gguf" in notice.text


def test_invalid_option_is_a_notice(argv: list[str]) -> None:
    runtime = boot.ensure_started([*argv, "--dispatch-method", "random"])
    assert "dispatch method" in runtime.notices[0].text
    assert runtime.server is None


def test_lifespan_boots_at_start_and_stops_at_exit(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.argv", ["app.py", *argv])

    async def serve() -> str:
        async with boot.lifespan(None):
            runtime = boot.current_runtime()
            assert runtime is not None
            url = runtime.controller_url
            assert requests.get(f"{url}/health", timeout=5).ok
        return url

    url = asyncio.run(serve())
    assert not controller_threads()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health", timeout=2)


def test_workers_get_the_controller_token(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from controller.settings import ControllerSettings

    if "worker_token" not in ControllerSettings.__dataclass_fields__:
        pytest.skip("this controller has no tokens")
    monkeypatch.setenv("CONTROLLER_WORKER_TOKEN", "worker-secret")
    monkeypatch.delenv("WORKER_CONTROLLER_TOKEN", raising=False)
    runtime = boot.ensure_started([*argv, "--simulated-workers", "1"])
    [worker] = runtime.workers
    wait_until(lambda: worker.state in ("ready", "failed"), timeout_s=60)
    assert worker.state == "ready", worker.detail

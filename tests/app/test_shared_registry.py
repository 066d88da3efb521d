"""The app with a shared Redis registry (a real redis-server): boot option, page, degraded view."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from streamlit.testing.v1 import AppTest

from controller.api import create_app
from controller.server import BackgroundServer, free_port
from controller.settings import ControllerSettings
from tests.app.conftest import REPO_ROOT, register_fake_worker, wait_until
from tests.app.test_admin_page import ADMIN_PAGE
from tests.app.test_chat_page import CHAT_PAGE, assistant_texts
from tests.redis_server import RedisServer
from webui import admin_view, boot, chat_view
from webui.settings import AppSettingsError, parse_settings

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server not installed")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def health(url: str) -> dict:
    return requests.get(f"{url}/health", timeout=5).json()


def test_registry_url_option_over_the_environment() -> None:
    env = {"CONTROLLER_REGISTRY_URL": "redis://env-host:6379/0"}
    assert parse_settings([], env).registry_url == "redis://env-host:6379/0"
    assert parse_settings(["--registry-url", "redis://cli:6379/1"], env).registry_url == (
        "redis://cli:6379/1"
    )
    assert parse_settings([], {}).registry_url is None
    with pytest.raises(AppSettingsError, match="registry URL must start with redis://"):
        parse_settings(["--registry-url", "http://redis:6379"], {})


@pytest.fixture
def replica_b(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    """A second app boot in its own process on the same Redis, with a simulated worker."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("APP_", "CONTROLLER_", "WORKER_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    log_path = tmp_path / "replica-b.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.app.app_replica", "--controller-host", "127.0.0.1",
             "--controller-port", str(port), "--log-dir", str(tmp_path / "b"),
             "--no-embedded-worker", "--simulated-workers", "1",
             "--registry-url", redis_server.url],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: "booted" in log_path.read_text() or process.poll() is not None,
                   timeout_s=60)
        assert process.poll() is None, log_path.read_text()
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.fixture
def replica_a(redis_server: RedisServer, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[boot.AppRuntime]:
    """This process's app boot, with --registry-url; the pages talk to its controller."""
    monkeypatch.delenv("APP_CONTROLLER_URL", raising=False)
    monkeypatch.delenv("CONTROLLER_REGISTRY_URL", raising=False)
    monkeypatch.setenv("APP_LOG_DIR", str(tmp_path / "a"))
    runtime = boot.ensure_started([
        "--controller-host", "127.0.0.1", "--controller-port", str(free_port()),
        "--log-dir", str(tmp_path / "a"), "--no-embedded-worker",
        "--registry-url", redis_server.url,
    ])
    try:
        yield runtime
    finally:
        runtime.stop()
        wait_until(lambda: boot.current_runtime() is None)


def test_two_app_boots_share_one_redis(replica_a: boot.AppRuntime, replica_b: str) -> None:
    assert not replica_a.notices
    assert health(replica_a.controller_url)["registry"] == "redis"
    assert health(replica_b)["registry"] == "redis"
    # B's child worker registered with B; A's chat page lists it and A dispatches to it.
    wait_until(lambda: "simulated-vision" in requests.post(
        f"{replica_a.controller_url}/list_models", timeout=5).json()["models"], timeout_s=60)
    chat_view.fetch_models.clear()
    chat = AppTest.from_file(CHAT_PAGE, default_timeout=30)
    chat.run()
    assert not chat.exception
    assert chat.selectbox(key="chat_model").options == ["simulated-vision"]
    chat.chat_input[0].set_value("hello from replica A").run()
    assert not chat.error
    [answer] = assistant_texts(chat)
    assert answer.strip()


@pytest.fixture
def controller(redis_server: RedisServer) -> Iterator[str]:
    """Overrides conftest's: a controller whose registry is in Redis."""
    settings = ControllerSettings(host="127.0.0.1", port=free_port(),
                                  registry_url=redis_server.url,
                                  registry_key_prefix=f"test-{free_port()}:")
    server = BackgroundServer(create_app(settings), "127.0.0.1", settings.port,
                              thread_name="test-controller")
    with server:
        yield server.url


def test_admin_says_when_the_shared_registry_is_unreachable(
    app_env: Path, controller: str, redis_server: RedisServer
) -> None:
    register_fake_worker(controller, "http://127.0.0.1:9", ["kept-model"])
    admin_view.poll.clear()
    admin = AppTest.from_file(ADMIN_PAGE, default_timeout=30)
    admin.run()
    assert not admin.error
    assert any(c.value.startswith("Registry: Redis, shared by every controller replica")
               for c in admin.caption)

    redis_server.stop()
    wait_until(lambda: health(controller)["status"] == "degraded")
    admin_view.poll.clear()
    admin.run()
    assert not admin.exception
    [error] = admin.error
    assert error.value.startswith("The shared registry (Redis) is unreachable")
    assert "last known view" in error.value
    # The last known view is still shown.
    assert list(admin.dataframe[0].value["Address"]) == ["http://127.0.0.1:9"]

    redis_server.start()
    wait_until(lambda: health(controller)["status"] == "ok", timeout_s=30)
    admin_view.poll.clear()
    admin.run()
    assert not admin.error

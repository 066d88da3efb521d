"""The chat page across controller faults: a restart under a running page, a kill mid-answer."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from streamlit.testing.v1 import AppTest

from controller.server import free_port, port_is_free
from tests.app.conftest import REPO_ROOT, registered, wait_until
from tests.app.test_chat_page import CHAT_PAGE, assistant_texts, log_lines
from webui import chat_view


class ControllerProcess:
    """`python -m controller` on one fixed port, which a test can kill and start again."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLLER_")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "controller", "--host", "127.0.0.1",
                 "--port", str(self.port), "--heart-beat-expiration", "4",
                 "--log-level", "warning"],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(self._answers, timeout_s=30)

    def _answers(self) -> bool:
        assert self.process is not None and self.process.poll() is None, \
            self.log_path.read_text()[-2000:]
        try:
            return requests.get(f"{self.url}/health", timeout=1).ok
        except requests.RequestException:
            return False

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, streams in flight break off."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None
        wait_until(lambda: port_is_free("127.0.0.1", self.port))


@pytest.fixture
def controller_process(tmp_path: Path) -> Iterator[ControllerProcess]:
    proc = ControllerProcess(tmp_path / "controller.log")
    proc.start()
    yield proc
    proc.kill()


@pytest.fixture
def controller(controller_process: ControllerProcess) -> str:
    """Overrides conftest's: the workers and the page use the killable controller."""
    return controller_process.url


@pytest.fixture
def chat(app_env: Path) -> AppTest:
    chat_view.fetch_models.clear()
    return AppTest.from_file(CHAT_PAGE, default_timeout=30)


def _past_models_cache() -> None:
    # The page's model list is cached across runs; a real page reruns after it expires.
    time.sleep(chat_view.MODELS_TTL_S + 0.1)


def test_chat_survives_a_controller_restart(
    chat: AppTest, controller_process: ControllerProcess, start_worker, app_env: Path
) -> None:
    worker = start_worker()
    chat.run()
    chat.chat_input[0].set_value("before the restart").run()
    assert not chat.error

    controller_process.kill()
    # Sent while the models are still cached: the answer fails, clearly, and is kept.
    chat.chat_input[0].set_value("during the outage").run()
    assert not chat.exception
    assert "cannot reach the controller" in chat.error[0].value

    _past_models_cache()
    chat.run()
    assert not chat.exception
    assert "is not answering" in chat.warning[0].value
    assert chat.chat_input[0].disabled
    assert chat.chat_input[0].proto.placeholder == "Waiting for the controller…"
    # The conversation so far is still on the page.
    assert [m.name for m in chat.chat_message] == ["user", "assistant"] * 2

    controller_process.start()
    started = time.monotonic()
    # The worker registers again by itself within one heartbeat (1 s in these tests).
    wait_until(lambda: worker in registered(controller_process.url), timeout_s=10)
    assert time.monotonic() - started < 5
    _past_models_cache()
    chat.run()
    assert not chat.warning
    assert chat.selectbox(key="chat_model").value == "simulated-chat"
    chat.chat_input[0].set_value("after the restart").run()
    assert not chat.exception
    assert len(chat.error) == 1  # only the outage's answer
    assert assistant_texts(chat)[-1].strip()
    turns = log_lines(app_env)
    assert [t["finish"] for t in turns] == ["stop", "error", "stop"]
    assert [m["content"] for m in turns[-1]["messages"] if m["role"] == "user"] == [
        "before the restart", "during the outage", "after the restart"
    ]


def test_controller_killed_mid_answer_keeps_the_turn_in_the_log(
    chat: AppTest, controller_process: ControllerProcess, start_worker, app_env: Path
) -> None:
    # About 6 s per answer, so the controller dies with frames sent and more to come.
    worker = start_worker(tokens_per_s=10.0, answer_tokens=60)
    chat.run()

    def kill_once_streaming() -> None:
        def streaming() -> bool:
            views = requests.get(f"{controller_process.url}/workers", timeout=2).json()
            return any(w["address"] == worker and w["in_flight"] for w in views["workers"])

        wait_until(streaming, timeout_s=20)
        time.sleep(1.0)
        controller_process.kill()

    killer = threading.Thread(target=kill_once_streaming)
    killer.start()
    chat.chat_input[0].set_value("a long answer please").run()
    killer.join()
    assert not chat.exception
    [partial] = assistant_texts(chat)
    assert partial.strip()
    assert chat.error[0].value.startswith("The answer failed:")
    [turn] = log_lines(app_env)
    assert turn["finish"] == "error"
    assert turn["messages"][0] == {"role": "user", "content": "a long answer please"}
    assert turn["messages"][1]["content"].strip() == partial.strip()
    assert turn["error"]

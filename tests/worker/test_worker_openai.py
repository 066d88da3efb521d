"""The openai backend against a real OpenAI-compatible server this project did not write:
llama-cpp-python's own `llama_cpp.server` serving the default SmolLM2 model file."""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from controller.server import free_port
from protocol.frames import WORKER_FAILED
from tests.worker.worker_helpers import chat, get_status, png_base64, post_frames, wait_until
from worker.backends.llama_cpp import DEFAULT_MODEL_NAME, default_model_path
from worker.backends.openai_compat import OpenAIBackend

pytestmark = pytest.mark.model

# Small, so a prompt that overflows it is cheap to send.
SERVER_CONTEXT_TOKENS = 512
# One thread: with two on two cores llama.cpp spins against the test's own processes and
# drops from about 80 to 2 tokens/s.
SERVER_START_TIMEOUT_S = 60.0


@dataclass
class LlamaServer:
    """A `python -m llama_cpp.server` process on a loopback port."""

    process: subprocess.Popen[bytes]
    api_base: str
    log: tempfile._TemporaryFileWrapper[bytes]

    def log_tail(self) -> str:
        """The end of the server's output, for failure messages."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        """Stop the process (and wait, so the port is free again)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def start_llama_server() -> LlamaServer:
    """Start llama-cpp-python's server and wait until it lists its model."""
    port = free_port()
    # A file, not a pipe: llama.cpp logs every request and a full pipe would block the server.
    # LlamaServer.stop() closes it.
    log = tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()),
         "--host", "127.0.0.1", "--port", str(port), "--model_alias", DEFAULT_MODEL_NAME,
         "--n_ctx", str(SERVER_CONTEXT_TOKENS), "--n_threads", "1"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    server = LlamaServer(process, f"http://127.0.0.1:{port}/v1", log)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}: {server.log_tail()}")
        try:
            if requests.get(f"{server.api_base}/models", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    pytest.fail(f"llama_cpp.server did not answer /v1/models within {SERVER_START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def llama_server() -> Iterator[LlamaServer]:
    """One real upstream for the module (started once: loading and warming take seconds)."""
    server = start_llama_server()
    try:
        yield server
    finally:
        server.stop()


def test_chat_through_the_controller_reaches_the_real_server(
    llama_server, start_controller, start_worker
):
    from tests.worker.test_worker_with_controller import list_models

    controller = start_controller()
    backend = OpenAIBackend(llama_server.api_base)
    start_worker(
        backend, backend="openai", api_base=llama_server.api_base, no_register=False,
        controller_address=controller.url, heart_beat_interval_s=0.2,
    )

    wait_until(lambda: DEFAULT_MODEL_NAME in list_models(controller.url))
    frames = post_frames(
        controller.url,
        chat("What color is the sky on a clear day?", model=DEFAULT_MODEL_NAME),
    )

    assert all(frame["error_code"] == 0 for frame in frames)
    assert "blue" in frames[-1]["text"].lower()
    assert frames[-1]["finish_reason"] in ("stop", "length")
    # Cumulative text: every frame extends the one before.
    texts = [frame["text"] for frame in frames]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))


def test_the_model_name_is_discovered_from_the_server(llama_server):
    backend = OpenAIBackend(llama_server.api_base)

    assert backend.model_name == DEFAULT_MODEL_NAME


def test_the_status_of_a_live_upstream_is_healthy(llama_server, start_worker):
    worker = start_worker(OpenAIBackend(llama_server.api_base), backend="openai",
                          api_base=llama_server.api_base)

    status = get_status(worker.url)

    assert status["model_names"] == [DEFAULT_MODEL_NAME]
    assert status["healthy"] is True
    assert status["upstream"] == llama_server.api_base
    assert status["limit_model_concurrency"] == 5


def test_the_servers_rejection_is_one_error_frame_with_its_message(llama_server, start_worker):
    # Claim images, then attach one to the system message: llama_cpp.server's request schema
    # takes image parts in user messages only, so it refuses this before streaming.
    worker = start_worker(OpenAIBackend(llama_server.api_base, multimodal=True),
                          backend="openai", api_base=llama_server.api_base)
    payload = chat("Hi")
    payload["prompt"][0]["image"] = [png_base64(4, 4)]

    frames = post_frames(worker.url, payload)

    assert len(frames) == 1
    assert frames[0]["error_code"] == WORKER_FAILED
    assert f"upstream {llama_server.api_base} refused the request" in frames[0]["text"]
    # llama_cpp.server's own words (a pydantic validation error), passed on.
    assert "HTTP 500" in frames[0]["text"]
    assert "validation error" in frames[0]["text"]
    # The worker and the upstream keep serving.
    assert post_frames(worker.url, chat("Hi", max_new_tokens=4))[-1]["error_code"] == 0


def test_a_stream_the_server_ends_silently_is_an_error_frame(llama_server, start_worker):
    # llama_cpp.server finds the prompt too long only after sending 200 and ends the stream.
    worker = start_worker(OpenAIBackend(llama_server.api_base), backend="openai",
                          api_base=llama_server.api_base)

    frames = post_frames(worker.url, chat("hello " * 2000))

    assert len(frames) == 1
    assert frames[0]["error_code"] == WORKER_FAILED
    assert "without finishing it (no finish_reason, no [DONE])" in frames[0]["text"]


def test_an_upstream_that_stops_answering_is_unhealthy(start_worker):
    server = start_llama_server()
    try:
        worker = start_worker(
            OpenAIBackend(server.api_base, health_interval_s=0.2), backend="openai",
            api_base=server.api_base,
        )
        wait_until(lambda: get_status(worker.url)["healthy"] is True)
    finally:
        server.stop()

    wait_until(lambda: get_status(worker.url)["healthy"] is False)
    status = get_status(worker.url)
    frames = post_frames(worker.url, chat("Still there?"))

    assert server.api_base in status["unhealthy_reason"]
    assert len(frames) == 1
    assert frames[0]["error_code"] == WORKER_FAILED
    assert f"upstream {server.api_base} does not answer" in frames[0]["text"]


def test_python_m_worker_serves_the_upstream_model(llama_server):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "--backend", "openai", "--api-base",
             llama_server.api_base, "--port", str(port), "--host", "127.0.0.1", "--no-register"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            def up() -> bool:
                try:
                    return requests.get(f"{url}/worker_get_status", timeout=1).ok
                except requests.RequestException:
                    return process.poll() is not None

            wait_until(up, timeout_s=30)
            assert process.poll() is None, "python -m worker exited"
            assert get_status(url)["model_names"] == [DEFAULT_MODEL_NAME]
            assert post_frames(url, chat("Hi", max_new_tokens=4))[-1]["error_code"] == 0
        finally:
            process.terminate()
            process.wait(timeout=10)
        log.seek(0)
        output = log.read().decode(errors="replace")
    assert f"no --model-name given; serving {DEFAULT_MODEL_NAME}" in output, output[-2000:]

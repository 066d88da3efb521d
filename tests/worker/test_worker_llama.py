"""The real default model (SmolLM2-135M-Instruct on llama.cpp) behind the worker protocol."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.server import BackgroundServer, free_port
from protocol.frames import BAD_REQUEST
from tests.worker.worker_helpers import chat, png_base64, post_frames, wait_until, worker_settings

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def llama_worker() -> Iterator[BackgroundServer]:
    """One worker serving the default model for the whole module (loading takes ~0.2 s)."""
    from worker.api import create_app
    from worker.backends.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(context_size=2048)
    port = free_port()
    settings = worker_settings(backend="llama-cpp", port=port)
    with BackgroundServer(create_app(settings, backend), "127.0.0.1", port) as server:
        yield server
    backend.close()


def greedy(prompt: list[dict[str, str]], max_new_tokens: int = 48) -> dict[str, object]:
    return {
        "model": "SmolLM2-135M-Instruct",
        "prompt": prompt,
        "temperature": 0.0,
        "top_p": 1.0,
        "max_new_tokens": max_new_tokens,
        "repetition_penalty": 1.0,
        "max_input_tiles": 1,
    }


def test_default_model_answers_a_question(llama_worker):
    frames = post_frames(llama_worker.url, chat("What color is the sky on a clear day?"))

    assert all(frame["error_code"] == 0 for frame in frames)
    assert "blue" in frames[-1]["text"]
    assert frames[-1]["usage"]["completion_tokens"] > 0


def test_multi_turn_conversation_keeps_context(llama_worker):
    prompt = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "My name is Alice."},
        {"role": "assistant", "content": "Nice to meet you, Alice!"},
        {"role": "user", "content": "What is my name?"},
    ]

    frames = post_frames(llama_worker.url, greedy(prompt))

    assert "Alice" in frames[-1]["text"]


def test_images_sent_to_smollm2_get_a_clear_error_frame(llama_worker):
    frames = post_frames(
        llama_worker.url, chat("Describe this.", extra={"image": [png_base64(4, 4)]})
    )

    assert len(frames) == 1
    assert frames[0]["error_code"] == BAD_REQUEST
    assert "SmolLM2-135M-Instruct does not take images" in frames[0]["text"]


def test_a_prompt_longer_than_the_context_gets_an_error_frame(llama_worker):
    frames = post_frames(llama_worker.url, chat("hello " * 5000))

    assert frames[-1]["error_code"] == BAD_REQUEST
    assert "context" in frames[-1]["text"]
    # The worker keeps serving.
    assert post_frames(llama_worker.url, chat("Hi", max_new_tokens=4))[-1]["error_code"] == 0


def test_default_model_answers_through_the_real_controller(llama_worker, start_controller):
    from worker.api import create_app
    from worker.backends.llama_cpp import LlamaCppBackend

    controller = start_controller()
    # A second, registering worker on the same model file: the module one does not register.
    port = free_port()
    settings = worker_settings(
        backend="llama-cpp", port=port, worker_address=f"http://127.0.0.1:{port}",
        no_register=False, controller_address=controller.url, heart_beat_interval_s=0.2,
    )
    backend = LlamaCppBackend(context_size=2048)
    try:
        with BackgroundServer(create_app(settings, backend), "127.0.0.1", port):
            from tests.worker.test_worker_with_controller import list_models

            wait_until(lambda: "SmolLM2-135M-Instruct" in list_models(controller.url))
            frames = post_frames(
                controller.url, chat("Name a fruit.", model="SmolLM2-135M-Instruct")
            )
    finally:
        backend.close()

    assert frames[-1]["error_code"] == 0
    assert frames[-1]["text"].strip()

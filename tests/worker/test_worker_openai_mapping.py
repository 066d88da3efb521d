"""The openai backend against a recording fake server: request mapping, streaming, errors,
disconnects, concurrency and health. The real-server tests are in test_worker_openai.py."""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

import pytest
import requests

from controller.server import BackgroundServer, free_port
from protocol.frames import BAD_REQUEST, WORKER_FAILED, iter_frames
from tests.worker.fake_openai import FakeOpenAI
from tests.worker.worker_helpers import (
    TIMEOUT_S,
    chat,
    get_status,
    png_base64,
    post_frames,
    wait_until,
)
from worker.backends.base import BackendError
from worker.backends.openai_compat import (
    OpenAIBackend,
    chat_completion_body,
    image_data_url,
    upstream_error_message,
)
from worker.params import InvalidParams, parse_generation_params
from worker.settings import WorkerSettings

Starter = Callable[..., BackgroundServer]


@pytest.fixture
def fake() -> Iterator[tuple[FakeOpenAI, str]]:
    """A fake upstream and its API base URL."""
    upstream = FakeOpenAI()
    port = free_port()
    with BackgroundServer(upstream.app, "127.0.0.1", port, thread_name="fake-openai") as server:
        yield upstream, f"{server.url}/v1"


def openai_worker(start_worker: Starter, api_base: str, *, model_name: str | None = "InternVL3-8B",
                  multimodal: bool = True, api_key: str | None = None,
                  health_interval_s: float = 10.0, **overrides) -> BackgroundServer:
    backend = OpenAIBackend(api_base, model_name=model_name, api_key=api_key,
                            multimodal=multimodal, connect_timeout_s=2.0,
                            health_interval_s=health_interval_s)
    return start_worker(backend, backend="openai", api_base=api_base, **overrides)


def request_with(prompt: list[dict], **params) -> object:
    return parse_generation_params({"prompt": prompt, **params}, context_size=0)


# Request mapping as a unit.

@pytest.mark.parametrize(
    ("image_format", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_images_become_data_urls_with_the_mime_type_of_their_bytes(image_format, mime):
    encoded = png_base64(6, 4, image_format)

    url = image_data_url(base64.b64decode(encoded))

    assert url == f"data:{mime};base64,{encoded}"


def test_an_image_of_unknown_format_is_refused_by_name():
    with pytest.raises(InvalidParams, match=r"prompt\[1\]\.image\[0\] is not a PNG, JPEG"):
        image_data_url(b"BM\x00\x00 not really", "prompt[1].image[0]")


def test_internvl_params_map_to_a_chat_completion_body():
    jpeg = png_base64(5, 5, "JPEG")
    request = request_with(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi", "image": []},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "What is this?", "image": [jpeg]},
            {"role": "assistant", "content": ""},
        ],
        temperature=0, top_p=0.9, max_new_tokens=77, repetition_penalty=1.05,
    )

    body = chat_completion_body(request, "InternVL3-8B")

    assert body == {
        "model": "InternVL3-8B",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{jpeg}"}},
                {"type": "text", "text": "What is this?"},
            ]},
        ],
        "stream": True,
        "temperature": 0.0,
        "top_p": 0.9,
        "max_tokens": 77,
        "repetition_penalty": 1.05,
    }


def test_max_new_tokens_is_not_capped_when_the_context_is_unknown():
    request = request_with([{"role": "user", "content": "Hi"}], max_new_tokens=100_000)

    assert chat_completion_body(request, "m")["max_tokens"] == 100_000


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"error": {"message": "context too long", "type": "invalid_request_error"}}',
         "context too long"),
        (b'{"object": "error", "message": "max_tokens is too large", "code": 400}',
         "max_tokens is too large"),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "HTTP 502 with an empty body"),
    ],
)
def test_upstream_error_messages_are_read_from_each_server_shape(raw, message):
    assert upstream_error_message(502, raw) == message


# Through a worker, against the recording fake server.

def test_the_exact_json_body_and_key_reach_the_upstream(fake, start_worker):
    upstream, api_base = fake
    worker = openai_worker(start_worker, api_base, api_key="sk-test")
    png = png_base64(8, 6)
    payload = chat("What is in the picture?", extra={"image": [png]}, temperature=0.0,
                   top_p=0.5, max_new_tokens=33, repetition_penalty=1.2)

    frames = post_frames(worker.url, payload)

    assert frames[-1]["error_code"] == 0
    assert upstream.bodies == [{
        "model": "InternVL3-8B",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                {"type": "text", "text": "What is in the picture?"},
            ]},
        ],
        "stream": True,
        "temperature": 0.0,
        "top_p": 0.5,
        "max_tokens": 33,
        "repetition_penalty": 1.2,
    }]
    assert upstream.headers[0]["authorization"] == "Bearer sk-test"


def test_deltas_stream_back_as_cumulative_frames(fake, start_worker):
    upstream, api_base = fake
    upstream.usage = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    worker = openai_worker(start_worker, api_base)

    frames = post_frames(worker.url, chat("Hi"))

    texts = [frame["text"] for frame in frames]
    assert texts[:3] == ["Hello", "Hello there", "Hello there!"]
    assert frames[-1] == {"text": "Hello there!", "error_code": 0,
                          "usage": {"completion_tokens": 3}, "finish_reason": "stop"}


def test_an_upstream_rejection_is_one_error_frame_with_its_message(fake, start_worker):
    upstream, api_base = fake
    upstream.error = (400, {"object": "error", "code": 400, "message":
                            "This model's maximum context length is 8192 tokens."})
    worker = openai_worker(start_worker, api_base)

    frames = post_frames(worker.url, chat("Hi"))

    assert len(frames) == 1
    assert frames[0]["error_code"] == BAD_REQUEST
    assert "HTTP 400" in frames[0]["text"]
    assert "maximum context length is 8192 tokens" in frames[0]["text"]
    assert api_base in frames[0]["text"]


def test_an_upstream_server_error_blames_the_worker(fake, start_worker):
    upstream, api_base = fake
    upstream.error = (503, {"error": {"message": "engine is overloaded"}})
    worker = openai_worker(start_worker, api_base)

    frames = post_frames(worker.url, chat("Hi"))

    assert [(f["error_code"], "engine is overloaded" in f["text"]) for f in frames] == [
        (WORKER_FAILED, True)
    ]


def test_an_error_event_mid_stream_ends_with_one_error_frame(fake, start_worker):
    upstream, api_base = fake
    upstream.mid_stream_error = {"error": {"message": "CUDA out of memory", "code": 500}}
    worker = openai_worker(start_worker, api_base)

    frames = post_frames(worker.url, chat("Hi"))

    assert [f["error_code"] for f in frames] == [0, 0, 0, WORKER_FAILED]
    assert "CUDA out of memory" in frames[-1]["text"]


def test_a_stream_cut_before_its_finish_is_an_error_frame(fake, start_worker):
    upstream, api_base = fake
    upstream.cut_after_words = True
    worker = openai_worker(start_worker, api_base)

    frames = post_frames(worker.url, chat("Hi"))

    assert [f["error_code"] for f in frames] == [0, 0, 0, WORKER_FAILED]
    assert "without finishing it" in frames[-1]["text"]
    assert "after 3 tokens" in frames[-1]["text"]


def test_a_client_that_goes_away_closes_the_upstream_request(fake, start_worker):
    upstream, api_base = fake
    upstream.hang = True
    worker = openai_worker(start_worker, api_base)

    with requests.post(f"{worker.url}/worker_generate_stream", json=chat("Hi"), stream=True,
                       timeout=TIMEOUT_S) as response:
        first = next(iter_frames(response.iter_content(chunk_size=None)))
        assert first["text"] == "Hello"
    # Leaving the block closed our connection; the worker must drop its upstream one.

    assert upstream.disconnected.wait(TIMEOUT_S)
    wait_until(lambda: get_status(worker.url)["queue_length"] == 0)


def test_generations_run_at_once_up_to_the_concurrency_flag(fake, start_worker):
    upstream, api_base = fake
    upstream.hang = True
    worker = openai_worker(start_worker, api_base, limit_model_concurrency=3)
    assert get_status(worker.url)["limit_model_concurrency"] == 3

    def open_stream() -> None:
        # The fake hangs; the client times out mid-stream, which is all this needs.
        with contextlib.suppress(requests.RequestException):
            requests.post(f"{worker.url}/worker_generate_stream", json=chat("Hi"), timeout=1.5)

    clients = [threading.Thread(target=open_stream) for _ in range(4)]
    for client in clients:
        client.start()
    for _ in range(3):
        assert upstream.started.acquire(timeout=TIMEOUT_S)
    wait_until(lambda: get_status(worker.url)["queue_length"] == 4, timeout_s=1.0)
    status = get_status(worker.url)
    sent_upstream = len(upstream.bodies)
    for client in clients:
        client.join()

    # Three upstream requests at once (the flag), not llama-cpp's one; the fourth waits.
    assert (status["running"], status["waiting"], sent_upstream) == (3, 1, 3)


def test_a_down_upstream_is_unhealthy_and_named_in_the_error_frame(start_worker):
    dead_base = f"http://127.0.0.1:{free_port()}/v1"
    worker = openai_worker(start_worker, dead_base, health_interval_s=0.1)

    wait_until(lambda: get_status(worker.url)["healthy"] is False)
    status = get_status(worker.url)
    frames = post_frames(worker.url, chat("Hi"))

    assert status["upstream"] == dead_base
    assert f"upstream {dead_base}/models does not answer" in status["unhealthy_reason"]
    assert "Cannot connect" in status["unhealthy_reason"]
    assert len(frames) == 1
    assert frames[0]["error_code"] == WORKER_FAILED
    assert f"upstream {dead_base} does not answer" in frames[0]["text"]


def test_health_comes_back_when_the_upstream_does(start_worker):
    upstream = FakeOpenAI()
    port = free_port()
    api_base = f"http://127.0.0.1:{port}/v1"
    worker = openai_worker(start_worker, api_base, health_interval_s=0.1)
    wait_until(lambda: get_status(worker.url)["healthy"] is False)

    with BackgroundServer(upstream.app, "127.0.0.1", port, thread_name="late-openai"):
        wait_until(lambda: get_status(worker.url)["healthy"] is True)
        assert "unhealthy_reason" not in get_status(worker.url)
        assert post_frames(worker.url, chat("Hi"))[-1]["text"] == "Hello there!"


def test_a_model_the_upstream_stopped_listing_is_unhealthy(fake, start_worker):
    _, api_base = fake
    worker = openai_worker(start_worker, api_base, model_name="Other-1B", health_interval_s=0.1)

    wait_until(lambda: get_status(worker.url)["healthy"] is False)
    assert "no longer lists model Other-1B (it lists: InternVL3-8B)" in (
        get_status(worker.url)["unhealthy_reason"]
    )


def test_images_support_is_reported_from_the_flag(fake, start_worker):
    _, api_base = fake
    vision = openai_worker(start_worker, api_base, multimodal=True)
    text_only = openai_worker(start_worker, api_base, multimodal=False)

    assert get_status(vision.url)["multimodal"] is True
    assert get_status(text_only.url)["multimodal"] is False
    frames = post_frames(text_only.url, chat("What?", extra={"image": [png_base64(4, 4)]}))
    assert frames[0]["error_code"] == BAD_REQUEST
    assert "does not take images" in frames[0]["text"]


def test_discovery_picks_the_first_model_and_says_so(fake, caplog):
    upstream, api_base = fake
    upstream.models = ["InternVL3-8B", "InternVL3-2B"]

    with caplog.at_level(logging.INFO, logger="worker.backends.openai_compat"):
        backend = OpenAIBackend(api_base)

    assert backend.model_name == "InternVL3-8B"
    assert "serves the first, InternVL3-8B" in caplog.text


def test_discovery_from_a_down_upstream_fails_with_a_clear_message():
    dead_base = f"http://127.0.0.1:{free_port()}/v1"

    with pytest.raises(BackendError, match=r"cannot list the models of .*--model-name"):
        OpenAIBackend(dead_base, connect_timeout_s=1.0)


# Settings.

def test_openai_settings_from_flags_and_the_key_from_the_environment(capsys):
    settings = WorkerSettings.from_sources(
        ["--backend", "openai", "--api-base", "http://gpu-host:23333/v1/", "--multimodal",
         "--model-name", "InternVL3-8B", "--limit-model-concurrency", "32"],
        environ={"WORKER_API_KEY": "sk-secret"},
    )

    assert settings.api_base == "http://gpu-host:23333/v1"
    assert settings.api_key == "sk-secret"
    assert settings.limit_model_concurrency == 32
    assert "sk-secret" not in repr(settings)
    with pytest.raises(SystemExit):
        WorkerSettings.from_sources(["--help"], environ={"WORKER_API_KEY": "sk-secret"})
    assert "sk-secret" not in capsys.readouterr().out


def test_the_openai_backend_needs_an_api_base(capsys):
    with pytest.raises(SystemExit):
        WorkerSettings.from_sources(["--backend", "openai"], environ={})

    assert "needs --api-base" in capsys.readouterr().err

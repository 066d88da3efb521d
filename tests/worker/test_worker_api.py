"""The worker protocol over real HTTP, with the simulated backend."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from controller.server import BackgroundServer, free_port
from protocol.frames import BAD_REQUEST, FrameDecoder
from tests.worker.worker_helpers import (
    TIMEOUT_S,
    chat,
    get_status,
    png_base64,
    post_frames,
    wait_until,
    worker_settings,
)
from worker.api import create_app
from worker.backends.simulated import SimulatedBackend


@pytest.fixture(scope="module")
def shared_worker() -> Iterator[BackgroundServer]:
    """One default simulated worker for the tests that do not change its settings."""
    port = free_port()
    settings = worker_settings(port=port, worker_address=f"http://127.0.0.1:{port}")
    backend = SimulatedBackend(tokens_per_s=1000.0, time_to_first_token_s=0.0)
    with BackgroundServer(create_app(settings, backend), "127.0.0.1", port) as server:
        yield server


def test_status_reports_model_speed_queue_and_multimodal(start_worker):
    worker = start_worker(speed=3)

    status = get_status(worker.url)

    assert status["model_names"] == ["simulated-chat"]
    assert status["speed"] == 3
    assert status["queue_length"] == 0
    assert status["multimodal"] is False


def test_status_answers_get_as_well_as_post(shared_worker):
    worker = shared_worker

    response = requests.get(f"{worker.url}/worker_get_status", timeout=TIMEOUT_S)

    assert response.json()["model_names"] == ["simulated-chat"]


def test_stream_frames_carry_the_whole_text_so_far(shared_worker):
    worker = shared_worker

    frames = post_frames(worker.url, chat("Hello there"))

    texts = [frame["text"] for frame in frames]
    assert all(frame["error_code"] == 0 for frame in frames)
    assert texts[-1].startswith('Simulated answer to "Hello there":')
    assert all(later.startswith(earlier.rstrip()) for earlier, later in itertools.pairwise(texts))
    assert frames[-1]["finish_reason"] == "stop"
    assert frames[-1]["usage"] == {"completion_tokens": 64}


def test_stream_interval_sends_a_frame_every_n_tokens(start_worker):
    worker = start_worker(
        SimulatedBackend(tokens_per_s=1000.0, time_to_first_token_s=0.0, answer_tokens=12),
        stream_interval=4,
    )

    frames = post_frames(worker.url, chat("Hi"))

    # Tokens 4, 8 and 12, then the final frame with usage.
    assert len(frames) == 4
    assert frames[-1]["usage"] == {"completion_tokens": 12}


def test_max_new_tokens_caps_the_answer(shared_worker):
    worker = shared_worker

    frames = post_frames(worker.url, chat("Hi", max_new_tokens=3))

    assert frames[-1]["usage"] == {"completion_tokens": 3}
    assert frames[-1]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"temperature": -0.5}, "temperature must be >= 0"),
        ({"top_p": 0}, "top_p must be in (0, 1]"),
        ({"top_p": 1.5}, "top_p must be in (0, 1]"),
        ({"max_new_tokens": 0}, "max_new_tokens must be > 0"),
        ({"max_new_tokens": "many"}, "max_new_tokens must be an integer"),
        ({"repetition_penalty": 0}, "repetition_penalty must be > 0"),
        ({"max_input_tiles": 0}, "max_input_tiles must be >= 1"),
        ({"prompt": []}, "prompt must be a non-empty list"),
        ({"prompt": [{"role": "robot", "content": "hi"}]}, "prompt[0].role must be one of"),
        ({"prompt": [{"role": "user"}]}, "prompt[0].content must be a string"),
    ],
)
def test_bad_params_get_one_error_frame_naming_the_problem(shared_worker, change, expected):
    worker = shared_worker

    frames = post_frames(worker.url, {**chat("Hi"), **change})

    assert len(frames) == 1
    assert frames[0]["error_code"] == BAD_REQUEST
    assert expected in frames[0]["text"]
    # The worker keeps serving after a bad request.
    assert post_frames(worker.url, chat("Hi"))[-1]["error_code"] == 0


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_malformed_body_gets_an_error_frame_not_a_500(shared_worker, body):
    worker = shared_worker

    frames = post_frames(worker.url, body, headers={"Content-Type": "application/json"})

    assert len(frames) == 1
    assert frames[0]["error_code"] == BAD_REQUEST


def test_images_sent_to_a_text_only_model_get_a_clear_error_frame(shared_worker):
    worker = shared_worker

    frames = post_frames(worker.url, chat("What is this?", extra={"image": [png_base64(8, 8)]}))

    assert len(frames) == 1
    assert frames[0]["error_code"] == BAD_REQUEST
    assert "simulated-chat does not take images" in frames[0]["text"]


def test_invalid_base64_image_is_named(start_worker):
    worker = start_worker(SimulatedBackend(multimodal=True, time_to_first_token_s=0.0))

    frames = post_frames(worker.url, chat("What is this?", extra={"image": ["%%%"]}))

    assert frames[0]["error_code"] == BAD_REQUEST
    assert "prompt[1].image[0] is not valid base64" in frames[0]["text"]


def test_vision_simulation_describes_images_and_answers_with_a_box(start_worker):
    backend = SimulatedBackend(multimodal=True, tokens_per_s=1000.0, time_to_first_token_s=0.0)
    worker = start_worker(backend)
    images = [png_base64(64, 48), png_base64(20, 10, "JPEG")]

    frames = post_frames(
        worker.url, chat("Please detect the red car in the image.", extra={"image": images})
    )

    text = frames[-1]["text"]
    assert get_status(worker.url)["model_names"] == ["simulated-vision"]
    assert text.startswith("I received 2 images: 64x48 PNG, 20x10 JPEG.")
    assert "<ref>red car</ref><box>[[" in text
    box = [int(n) for n in text.split("[[")[1].split("]]")[0].split(",")]
    assert 0 <= box[0] < box[2] <= 1000
    assert 0 <= box[1] < box[3] <= 1000


def open_stream(url: str, payload: dict[str, Any]) -> tuple[requests.Session, requests.Response]:
    """Start a streamed generation and return once the worker has answered with headers."""
    session = requests.Session()
    response = session.post(
        f"{url}/worker_generate_stream", json=payload, stream=True, timeout=TIMEOUT_S
    )
    return session, response


def test_queue_length_is_exact_under_concurrent_requests(start_worker):
    # Generations that never reach their first token hold their slots until the client leaves.
    worker = start_worker(
        SimulatedBackend(time_to_first_token_s=3600.0), limit_model_concurrency=2
    )
    streams = [open_stream(worker.url, chat(f"question {n}")) for n in range(5)]
    try:
        wait_until(lambda: get_status(worker.url)["queue_length"] == 5)
        status = get_status(worker.url)
        assert (status["running"], status["waiting"]) == (2, 3)

        # A waiting client that leaves only shortens the queue.
        session, response = streams.pop()
        response.close()
        session.close()
        wait_until(lambda: get_status(worker.url)["queue_length"] == 4)
        status = get_status(worker.url)
        assert (status["running"], status["waiting"]) == (2, 2)

        # A running client that leaves frees its slot for the longest waiter.
        for expected in (3, 2, 1, 0):
            session, response = streams.pop(0)
            response.close()
            session.close()
            wait_until(lambda expected=expected: get_status(worker.url)["queue_length"] == expected)
            status = get_status(worker.url)
            assert status["running"] == min(2, expected)
            assert status["waiting"] == max(0, expected - 2)
    finally:
        for session, response in streams:
            response.close()
            session.close()


def test_finished_streams_have_freed_their_slots_when_the_answer_ends(start_worker):
    worker = start_worker(limit_model_concurrency=2)
    clients = 6
    start_together = threading.Barrier(clients)
    results: list[list[dict[str, Any]]] = []

    def client(n: int) -> None:
        start_together.wait(TIMEOUT_S)
        results.append(post_frames(worker.url, chat(f"question {n}", max_new_tokens=20)))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)

    assert [frames[-1]["usage"]["completion_tokens"] for frames in results] == [20] * clients
    # Exact with no waiting: a slot is released before the response's last byte is sent.
    assert get_status(worker.url)["queue_length"] == 0


def test_client_disconnecting_mid_answer_stops_generation_and_frees_its_slot(start_worker):
    backend = SimulatedBackend(tokens_per_s=200.0, time_to_first_token_s=0.0, answer_tokens=100_000)
    worker = start_worker(backend, limit_model_concurrency=1)
    session, response = open_stream(worker.url, chat("Talk forever"))
    decoder = FrameDecoder()
    frames: list[dict[str, Any]] = []
    # Keep the iterator referenced: dropping it would make urllib3 close the connection early.
    chunks = response.iter_content(chunk_size=None)
    while len(frames) < 3:
        frames.extend(decoder.feed(next(chunks)))
    assert get_status(worker.url)["queue_length"] == 1

    response.close()
    session.close()

    wait_until(lambda: get_status(worker.url)["queue_length"] == 0)
    # The single slot is usable again.
    assert post_frames(worker.url, chat("Hi", max_new_tokens=2))[-1]["error_code"] == 0

"""A simulated worker and the real controller on loopback ports."""

from __future__ import annotations

import requests

from controller.server import free_port
from tests.worker.worker_helpers import TIMEOUT_S, chat, post_frames, wait_until

FAST_BEATS = {"heart_beat_interval_s": 0.1, "register_retry_max_s": 0.1}


def list_models(controller_url: str) -> list[str]:
    response = requests.post(f"{controller_url}/list_models", timeout=TIMEOUT_S)
    response.raise_for_status()
    return response.json()["models"]


def test_worker_registers_and_answers_through_the_controller(start_controller, start_worker):
    controller = start_controller()
    start_worker(no_register=False, controller_address=controller.url, **FAST_BEATS)

    wait_until(lambda: "simulated-chat" in list_models(controller.url))
    frames = post_frames(controller.url, chat("Hello", model="simulated-chat"))

    assert frames[-1]["error_code"] == 0
    assert frames[-1]["text"].startswith('Simulated answer to "Hello":')


def test_worker_comes_back_after_the_controller_restarts(start_controller, start_worker):
    port = free_port()
    first = start_controller(port)
    start_worker(no_register=False, controller_address=first.url, **FAST_BEATS)
    wait_until(lambda: "simulated-chat" in list_models(first.url))

    first.stop()
    second = start_controller(port)

    wait_until(lambda: "simulated-chat" in list_models(second.url))
    frames = post_frames(second.url, chat("Back?", model="simulated-chat"))
    assert frames[-1]["error_code"] == 0


def test_worker_registers_with_a_controller_that_requires_a_token(start_controller, start_worker):
    controller = start_controller(worker_token="fleet-token")
    start_worker(
        no_register=False, controller_address=controller.url, controller_token="fleet-token",
        **FAST_BEATS,
    )

    wait_until(lambda: "simulated-chat" in list_models(controller.url))

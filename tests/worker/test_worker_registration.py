"""Registration and heartbeats against a recording controller on a real loopback port."""

from __future__ import annotations

import logging
import threading

import pytest

from controller.server import free_port
from tests.worker.worker_helpers import TIMEOUT_S, chat, get_status, post_frames

FAST_BEATS = {"heart_beat_interval_s": 0.1, "register_retry_max_s": 0.1}


class RegistrationFailures(logging.Handler):
    """Sets an event once the worker has logged a failed registration attempt."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("cannot register with controller"):
            self.seen.set()


@pytest.fixture
def registration_failures():
    handler = RegistrationFailures()
    logger = logging.getLogger("worker.registration")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_worker_registers_once_a_late_controller_comes_up(
    start_worker, start_fake_controller, registration_failures
):
    controller_port = free_port()
    worker = start_worker(
        no_register=False, controller_address=f"http://127.0.0.1:{controller_port}", **FAST_BEATS
    )
    assert registration_failures.seen.wait(TIMEOUT_S)
    # Serving does not wait for the controller.
    assert post_frames(worker.url, chat("Hi", max_new_tokens=2))[-1]["error_code"] == 0

    controller, _ = start_fake_controller(controller_port)

    controller.wait_for(lambda c: len(c.registrations) >= 1 and len(c.heart_beats) >= 2)
    registration = controller.registrations[0]
    assert registration["worker_name"] == worker.url
    assert registration["check_heart_beat"] is True
    assert registration["multimodal"] is False
    assert registration["worker_status"]["model_names"] == ["simulated-chat"]
    assert registration["worker_status"]["speed"] == 1
    assert controller.heart_beats[-1] == {"worker_name": worker.url, "queue_length": 0}


def test_worker_registers_again_when_the_controller_answers_exist_false(
    start_worker, start_fake_controller
):
    controller_port = free_port()
    controller, _ = start_fake_controller(controller_port)
    worker = start_worker(
        no_register=False, controller_address=f"http://127.0.0.1:{controller_port}", **FAST_BEATS
    )
    controller.wait_for(lambda c: len(c.registrations) == 1)

    controller.forget(worker.url)

    controller.wait_for(lambda c: len(c.registrations) == 2)
    assert worker.url in controller.known


def test_worker_survives_a_controller_restart_and_registers_again(
    start_worker, start_fake_controller
):
    controller_port = free_port()
    first, first_server = start_fake_controller(controller_port)
    worker = start_worker(
        no_register=False, controller_address=f"http://127.0.0.1:{controller_port}", **FAST_BEATS
    )
    first.wait_for(lambda c: len(c.registrations) == 1)

    first_server.stop()
    # The worker keeps serving while its controller is gone.
    assert get_status(worker.url)["model_names"] == ["simulated-chat"]
    second, _ = start_fake_controller(controller_port)

    second.wait_for(lambda c: len(c.registrations) >= 1 and len(c.heart_beats) >= 1)
    assert second.registrations[0]["worker_name"] == worker.url


def test_heartbeats_report_the_current_queue_length(start_worker, start_fake_controller):
    from tests.worker.test_worker_api import open_stream
    from worker.backends.simulated import SimulatedBackend

    controller_port = free_port()
    controller, _ = start_fake_controller(controller_port)
    worker = start_worker(
        SimulatedBackend(time_to_first_token_s=3600.0),
        no_register=False,
        controller_address=f"http://127.0.0.1:{controller_port}",
        **FAST_BEATS,
    )
    session, response = open_stream(worker.url, chat("Hold on"))
    try:
        controller.wait_for(lambda c: any(beat["queue_length"] == 1 for beat in c.heart_beats))
    finally:
        response.close()
        session.close()


def test_worker_sends_its_controller_token(start_worker, start_fake_controller):
    controller_port = free_port()
    controller, _ = start_fake_controller(controller_port, required_token="s3cret")
    start_worker(
        no_register=False, controller_address=f"http://127.0.0.1:{controller_port}",
        controller_token="s3cret", **FAST_BEATS,
    )

    controller.wait_for(lambda c: len(c.registrations) == 1 and len(c.heart_beats) >= 1)
    assert controller.rejected == 0


def test_worker_without_the_token_keeps_retrying_and_keeps_serving(
    start_worker, start_fake_controller
):
    controller_port = free_port()
    controller, _ = start_fake_controller(controller_port, required_token="s3cret")
    worker = start_worker(
        no_register=False, controller_address=f"http://127.0.0.1:{controller_port}", **FAST_BEATS
    )

    controller.wait_for(lambda c: c.rejected >= 2)
    assert controller.registrations == []
    assert get_status(worker.url)["queue_length"] == 0

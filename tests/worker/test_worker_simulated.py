"""The simulated backend: deterministic answers, image descriptions, boxes, pacing, cancel."""

from __future__ import annotations

import threading

from tests.worker.worker_helpers import chat, png_base64
from worker.backends.simulated import SimulatedBackend
from worker.params import parse_generation_params


def request_for(question: str, images: tuple[str, ...] = (), **params):
    body = chat(question, extra={"image": list(images)}, **params)
    return parse_generation_params(body, context_size=8192)


def run(backend: SimulatedBackend, request) -> list[str]:
    return [update.text for update in backend.generate(request, threading.Event())]


def test_the_same_request_gets_the_same_answer():
    backend = SimulatedBackend(tokens_per_s=10_000.0, time_to_first_token_s=0.0, answer_tokens=10)

    first = run(backend, request_for("Why is the sky blue?"))

    assert first == run(backend, request_for("Why is the sky blue?"))
    assert len(first) == 10
    assert first[-1].startswith('Simulated answer to "Why is the sky blue?":')


def test_model_names_say_simulated_unless_overridden():
    assert SimulatedBackend().model_name == "simulated-chat"
    assert SimulatedBackend(multimodal=True).model_name == "simulated-vision"
    assert SimulatedBackend(model_name="InternVL2-8B").model_name == "InternVL2-8B"


def test_vision_answer_without_a_grounding_question_only_describes_images():
    backend = SimulatedBackend(multimodal=True)

    answer = backend.answer(request_for("What is this?", (png_base64(30, 40),)))

    assert answer == "I received 1 image: 30x40 PNG."


def test_grounding_questions_get_a_stable_box_for_the_label():
    backend = SimulatedBackend(multimodal=True)
    image = (png_base64(10, 10),)

    where = backend.answer(request_for("Where is the dog?", image))
    locate = backend.answer(request_for("Locate the dog in this picture", image))

    assert "<ref>dog</ref><box>[[" in where
    assert where == locate


def test_cancel_stops_the_stream_before_the_first_token():
    backend = SimulatedBackend(time_to_first_token_s=3600.0)
    cancel = threading.Event()
    cancel.set()

    assert list(backend.generate(request_for("Hi"), cancel)) == []

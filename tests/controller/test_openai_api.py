"""The controller's OpenAI-compatible API, called with the official `openai` client."""

from __future__ import annotations

import base64
import io

import openai
import pytest
from PIL import Image

from tests.controller.peers import register


def png_base64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), "red").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def client_and_worker(controller_url, start_worker):
    worker = start_worker(model_names=["InternVL2-8B"], words=3, multimodal=True)
    register(controller_url, worker.url, worker.status())
    client = openai.OpenAI(base_url=controller_url + "/v1", api_key="unused", max_retries=0)
    yield client, worker
    client.close()


def test_models_are_listed_in_controller_order(controller_url, start_worker) -> None:
    for names in (["zeta"], ["InternVL2-26B"], ["InternVL2-Pro"]):
        worker = start_worker(model_names=names)
        register(controller_url, worker.url, worker.status())
    with openai.OpenAI(base_url=controller_url + "/v1", api_key="x") as client:
        assert [m.id for m in client.models.list()] == ["InternVL2-Pro", "InternVL2-26B", "zeta"]


def test_chat_completion_without_streaming(client_and_worker) -> None:
    client, worker = client_and_worker
    completion = client.chat.completions.create(
        model="InternVL2-8B",
        messages=[{"role": "system", "content": "be brief"},
                  {"role": "user", "content": "hello"}],
        temperature=0, max_tokens=32,
    )
    assert completion.choices[0].message.content == "word0 word1 word2 "
    assert completion.choices[0].finish_reason == "stop"
    sent = worker.requests[0]
    assert sent["prompt"] == [{"role": "system", "content": "be brief"},
                              {"role": "user", "content": "hello"}]
    assert (sent["temperature"], sent["max_new_tokens"]) == (0, 32)


def test_streamed_chat_with_text_and_image_parts(client_and_worker) -> None:
    client, worker = client_and_worker
    image = png_base64()
    stream = client.chat.completions.create(
        model="InternVL2-8B",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
        ]}],
        stream=True,
    )
    deltas = [chunk.choices[0].delta.content or "" for chunk in stream]
    assert "".join(deltas) == "word0 word1 word2 "
    assert worker.requests[0]["prompt"] == [
        {"role": "user", "content": "what is this?", "image": [image]}
    ]


def test_unknown_model_gets_openai_error_shape(client_and_worker) -> None:
    client, _ = client_and_worker
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert error.value.status_code == 404
    assert error.value.body["code"] == "model_not_found"
    assert "no-such-model" in error.value.body["message"]


@pytest.mark.parametrize(
    ("messages", "names"),
    [
        ([], "messages"),
        ([{"role": "robot", "content": "hi"}], "role"),
        ([{"role": "user", "content": [{"type": "image_url",
                                        "image_url": {"url": "http://internal/x.png"}}]}],
         "data URLs"),
    ],
)
def test_bad_requests_get_400_naming_the_problem(client_and_worker, messages, names) -> None:
    client, worker = client_and_worker
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="InternVL2-8B", messages=messages)
    assert names in error.value.body["message"]
    assert worker.requests == []

"""Validation of InternVL generation params."""

from __future__ import annotations

import base64

import pytest

from worker.params import InvalidParams, parse_generation_params


def params(**changes):
    return {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Name a colour.", "image": []},
        ],
        **changes,
    }


def test_missing_values_take_the_internvl_defaults():
    request = parse_generation_params(params(), context_size=4096)

    assert [m.role for m in request.messages] == ["system", "user", "assistant", "user"]
    assert (request.temperature, request.top_p, request.max_new_tokens) == (0.8, 0.7, 1024)
    assert request.last_user_text == "Name a colour."


def test_temperature_zero_is_accepted_as_greedy():
    assert parse_generation_params(params(temperature=0), context_size=4096).temperature == 0.0


def test_max_new_tokens_is_capped_by_the_context_size():
    request = parse_generation_params(params(max_new_tokens=100_000), context_size=2048)

    assert request.max_new_tokens == 2048


def test_integral_floats_are_accepted_for_integers():
    request = parse_generation_params(params(max_new_tokens=512.0), context_size=4096)

    assert request.max_new_tokens == 512


def test_trailing_empty_assistant_placeholder_is_dropped():
    body = params()
    body["prompt"].append({"role": "assistant", "content": ""})

    assert parse_generation_params(body, context_size=4096).messages[-1].role == "user"


def test_images_are_decoded_from_base64_and_data_urls():
    raw = b"\x89PNG fake"
    encoded = base64.b64encode(raw).decode()
    body = params()
    body["prompt"][-1]["image"] = [encoded, f"data:image/png;base64,{encoded}"]

    request = parse_generation_params(body, context_size=4096)

    assert request.messages[-1].images == (raw, raw)
    assert request.image_count == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("text", "request body must be a JSON object"),
        ({"temperature": 0.5}, "prompt is missing"),
        (params(temperature=True), "temperature must be a number"),
        (params(temperature=float("nan")), "temperature must be a finite number"),
        (params(top_p=-0.1), "top_p must be in (0, 1]"),
        (params(max_new_tokens=2.5), "max_new_tokens must be an integer"),
        (params(max_new_tokens=-1), "max_new_tokens must be > 0"),
        (params(repetition_penalty=-1), "repetition_penalty must be > 0"),
        (params(max_input_tiles=0), "max_input_tiles must be >= 1"),
        (params(model=3), "model must be a string"),
        ({"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
         "last message of prompt must come from the user"),
        ({"prompt": ["hello"]}, "prompt[0] must be an object"),
        ({"prompt": [{"role": "user", "content": "a", "image": 5}]}, "prompt[0].image must be"),
    ],
)
def test_invalid_params_are_named(body, message):
    with pytest.raises(InvalidParams) as error:
        parse_generation_params(body, context_size=4096)

    assert message in str(error.value)

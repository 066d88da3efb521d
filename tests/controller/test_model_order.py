"""The InternVL-aware order of /list_models (DESIGN.md section 4)."""

from __future__ import annotations

import random

import pytest

from controller.model_order import parameter_count_b, sort_models

SIZES = [
    ("InternVL2-8B", 8.0),
    ("InternVL2-26B", 26.0),
    ("InternVL2_5-78B", 78.0),
    ("InternVL3-8B", 8.0),
    ("InternVL3_5-241B-A28B", 241.0),
    ("Mini-InternVL-Chat-2B-V1-5", 2.0),
    ("InternVL2-Llama3-76B", 76.0),
    ("InternVL2-0.5B", 0.5),
    ("InternVL2_5-1B-MPO", 1.0),
    ("Mixtral-8x7B", None),
    ("InternVL-Chat-V1-5", None),
    ("SmolLM2-135M-Instruct", None),
    ("llama3.1-8b", 8.0),
]


@pytest.mark.parametrize(("name", "size"), SIZES)
def test_parameter_count_is_read_from_the_name(name: str, size: float | None) -> None:
    assert parameter_count_b(name) == size


ORDERS = [
    pytest.param(
        ["InternVL2-8B", "InternVL2-Pro", "InternVL2-26B"],
        ["InternVL2-Pro", "InternVL2-26B", "InternVL2-8B"],
        id="pro-first-then-largest",
    ),
    pytest.param(
        ["InternVL3-8B", "InternVL3_5-241B-A28B", "InternVL2_5-78B", "InternVL2-Llama3-76B",
         "Mini-InternVL-Chat-2B-V1-5", "InternVL2-0.5B"],
        ["InternVL3_5-241B-A28B", "InternVL2_5-78B", "InternVL2-Llama3-76B", "InternVL3-8B",
         "Mini-InternVL-Chat-2B-V1-5", "InternVL2-0.5B"],
        id="later-names-by-size",
    ),
    pytest.param(
        ["zephyr-7b", "Qwen2-VL-7B", "InternVL2-1B", "alpaca", "InternVL-Chat-V1-5"],
        ["InternVL2-1B", "InternVL-Chat-V1-5", "alpaca", "Qwen2-VL-7B", "zephyr-7b"],
        id="internvl-sized-then-unsized-then-others-alphabetical",
    ),
    pytest.param(
        ["InternVL3-8B", "InternVL2-8B", "internvl2-8b"],
        ["InternVL2-8B", "internvl2-8b", "InternVL3-8B"],
        id="equal-sizes-by-name-ignoring-case-then-exact",
    ),
    pytest.param(
        ["SmolLM2-135M-Instruct", "simulated-chat", "InternVL2-Pro", "Pro-Model-7B",
         "InternVL2_5-38B"],
        ["Pro-Model-7B", "InternVL2-Pro", "InternVL2_5-38B", "simulated-chat",
         "SmolLM2-135M-Instruct"],
        id="mixed-pros-sorted-by-size-then-name",
    ),
    pytest.param(
        ["Prompt-Guard", "Improved-2B", "Apro"],
        ["Apro", "Improved-2B", "Prompt-Guard"],
        id="pro-must-be-a-whole-part-of-the-name",
    ),
    pytest.param(["a", "a", "b"], ["a", "b"], id="duplicates-listed-once"),
    pytest.param([], [], id="empty"),
]


@pytest.mark.parametrize(("given", "expected"), ORDERS)
def test_models_are_listed_in_picker_order(given: list[str], expected: list[str]) -> None:
    assert sort_models(given) == expected


def test_order_does_not_depend_on_registration_order() -> None:
    names = [n for n, _ in SIZES] + ["InternVL2-Pro", "alpha", "Beta"]
    expected = sort_models(names)
    rng = random.Random(7)
    for _ in range(20):
        shuffled = names[:]
        rng.shuffle(shuffled)
        assert sort_models(shuffled) == expected

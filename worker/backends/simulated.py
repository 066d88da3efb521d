"""A model-free backend streaming deterministic text at a set pace (load tests, demos, UI tests)."""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Iterator

from worker.backends.base import TextUpdate
from worker.images import describe_image
from worker.params import GenerationRequest
from worker.settings import WorkerSettings

TEXT_MODEL_NAME = "simulated-chat"
VISION_MODEL_NAME = "simulated-vision"
SIMULATED_CONTEXT_SIZE = 8192

_FILLER = tuple(
    " ".join(
        (
            "This is a simulated model, so the words that follow carry no meaning and only",
            "exercise streaming, queueing and rendering in the chat and the dashboard.",
        )
    ).split()
)

# "detect the red car in the image", "where is the dog?", "find all cats" -> the object words.
_GROUNDING = re.compile(
    r"\b(?:detect|locate|find|ground|where\s+(?:is|are))\s+"
    r"(?:all\s+)?(?:the\s+|a\s+|an\s+)?(?P<label>.+?)"
    r"(?:\s+(?:in|on)\s+(?:the|this)\s+(?:image|picture|photo))?\s*[?.!]*$",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"\S+\s*")


class SimulatedBackend:
    """Deterministic answers; with `multimodal` it describes images and answers with boxes."""

    def __init__(
        self,
        *,
        model_name: str | None = None,
        multimodal: bool = False,
        tokens_per_s: float = 50.0,
        time_to_first_token_s: float = 0.2,
        answer_tokens: int = 64,
    ) -> None:
        self._model_name = model_name or (VISION_MODEL_NAME if multimodal else TEXT_MODEL_NAME)
        self._multimodal = multimodal
        self._token_interval_s = 1.0 / tokens_per_s
        self._time_to_first_token_s = time_to_first_token_s
        self._answer_tokens = answer_tokens

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> SimulatedBackend:
        """Build from the `simulated` options of the worker settings."""
        return cls(
            model_name=settings.model_name,
            multimodal=settings.multimodal,
            tokens_per_s=settings.tokens_per_s,
            time_to_first_token_s=settings.time_to_first_token_s,
            answer_tokens=settings.answer_tokens,
        )

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def multimodal(self) -> bool:
        return self._multimodal

    @property
    def context_size(self) -> int:
        return SIMULATED_CONTEXT_SIZE

    @property
    def max_concurrency(self) -> int | None:
        return None

    def answer(self, request: GenerationRequest) -> str:
        """The full deterministic answer to a request, before the max_new_tokens cap."""
        question = request.last_user_text.strip()
        images = [image for message in request.messages for image in message.images]
        if self._multimodal and images:
            # Header reads only: a simulated model must not be a way to decode a bomb.
            sizes = ", ".join(describe_image(data) for data in images)
            noun = "image" if len(images) == 1 else "images"
            text = f"I received {len(images)} {noun}: {sizes}."
            match = _GROUNDING.search(question)
            if match:
                label = match.group("label").strip()
                x1, y1, x2, y2 = _box_for(label)
                text += f" <ref>{label}</ref><box>[[{x1}, {y1}, {x2}, {y2}]]</box>"
            return text
        shown = question if len(question) <= 60 else question[:57] + "..."
        words = f'Simulated answer to "{shown}":'.split()
        filler = 0
        while len(words) < self._answer_tokens:
            words.append(_FILLER[filler % len(_FILLER)])
            filler += 1
        return " ".join(words)

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[TextUpdate]:
        """Stream the answer token by token on a fixed schedule; stop when cancelled."""
        tokens = _TOKEN.findall(self.answer(request))
        limit = min(len(tokens), request.max_new_tokens)
        start_s = time.monotonic()
        text = ""
        for index in range(limit):
            # A fixed schedule from the start, so slow consumers do not slow the pace down.
            due_s = start_s + self._time_to_first_token_s + index * self._token_interval_s
            if cancel.wait(max(0.0, due_s - time.monotonic())):
                return
            text += tokens[index]
            finish = None
            if index == limit - 1:
                finish = "stop" if limit == len(tokens) else "length"
            yield TextUpdate(text=text.rstrip() if finish else text, completion_tokens=index + 1,
                             finish_reason=finish)

    def close(self) -> None:
        """Nothing to free."""


def _box_for(label: str) -> tuple[int, int, int, int]:
    """A stable box in the 0-1000 coordinate space InternVL uses, derived from the label."""
    seed = zlib.crc32(label.lower().encode())
    x1 = 50 + seed % 400
    y1 = 50 + (seed >> 9) % 400
    width = 200 + (seed >> 18) % 300
    height = 200 + (seed >> 24) % 250
    return x1, y1, min(x1 + width, 1000), min(y1 + height, 1000)

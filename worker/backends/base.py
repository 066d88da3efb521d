"""The small interface every model backend implements."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from worker.params import GenerationRequest


class BackendError(RuntimeError):
    """The backend could not load or run the model; the message says why."""


class PromptTooLong(ValueError):
    """The prompt leaves no room in the context window; the client must shorten it."""


@dataclass(frozen=True)
class TextUpdate:
    """The whole answer so far, after `completion_tokens` generated tokens."""

    text: str
    completion_tokens: int
    finish_reason: str | None = None


class Backend(Protocol):
    """A model the worker serves; `generate` blocks, so the worker runs it in a thread."""

    @property
    def model_name(self) -> str: ...

    @property
    def multimodal(self) -> bool: ...

    @property
    def context_size(self) -> int: ...

    @property
    def max_concurrency(self) -> int | None:
        """Generations the backend can run at once (None = no limit of its own)."""
        ...

    def generate(
        self, request: GenerationRequest, cancel: threading.Event
    ) -> Iterator[TextUpdate]:
        """Yield cumulative text; stop soon after `cancel` is set."""
        ...

    def close(self) -> None:
        """Free the model."""
        ...

"""The small interface every model backend implements."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from worker.params import GenerationRequest


class BackendError(RuntimeError):
    """The backend could not load or run the model; the message says why."""


class PromptTooLong(ValueError):
    """The prompt leaves no room in the context window; the client must shorten it."""


class GenerationFailed(RuntimeError):
    """Generation failed with a cause to show the client and the frame error code to use."""

    def __init__(self, message: str, error_code: int) -> None:
        super().__init__(message)
        self.error_code = error_code


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


class AsyncBackend(Protocol):
    """A backend that waits on the network, not the CPU: it generates on the event loop.

    The worker calls `start()` once the loop runs and `aclose()` before it stops; `health()`
    adds fields to `/worker_get_status`. Closing the `agenerate` iterator (client gone) must end
    the upstream request.
    """

    @property
    def model_name(self) -> str: ...

    @property
    def multimodal(self) -> bool: ...

    @property
    def context_size(self) -> int:
        """Context window in tokens; 0 when unknown (the backend then leaves capping upstream)."""
        ...

    @property
    def max_concurrency(self) -> int | None: ...

    def agenerate(self, request: GenerationRequest) -> AsyncIterator[TextUpdate]:
        """Yield cumulative text as it arrives."""
        ...

    def health(self) -> dict[str, Any]:
        """Additive status fields, e.g. `{"healthy": False, "unhealthy_reason": ...}`."""
        ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def close(self) -> None: ...


def is_async(backend: Backend | AsyncBackend) -> bool:
    """True for backends that generate on the event loop (they have `agenerate`)."""
    return callable(getattr(backend, "agenerate", None))

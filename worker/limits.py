"""The worker's side of the prompt limits (`protocol.prompt_limits`): settings and errors.

Checked on the raw request, before any image is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.prompt_limits import LimitExceeded, PromptLimits, check_prompt_limits
from worker.params import InvalidParams
from worker.settings import WorkerSettings, env_var_name


@dataclass(frozen=True)
class InputLimits(PromptLimits):
    """The worker's prompt limits; each error names the WORKER_* variable that sets it."""

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> InputLimits:
        """The limits the worker settings configure."""
        return cls(
            max_messages=settings.max_messages,
            max_prompt_chars=settings.max_prompt_chars,
            max_images=settings.max_images,
            max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels,
        )


def check_input_limits(payload: Any, limits: InputLimits) -> None:
    """Raise InvalidParams naming the first limit the request breaks and its variable."""
    try:
        check_prompt_limits(payload, limits)
    except LimitExceeded as exc:
        raise InvalidParams(
            f"{exc} ({env_var_name(exc.setting)} on the worker)"
        ) from None

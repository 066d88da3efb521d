"""The controller's side of the prompt limits: its settings and its error (a 422)."""

from __future__ import annotations

from typing import Any

from controller.errors import InvalidPrompt
from protocol.prompt_limits import LimitExceeded, PromptLimits, check_prompt_limits

__all__ = ["PromptLimits", "check_generation_params"]


def check_generation_params(params: dict[str, Any], limits: PromptLimits) -> None:
    """Raise InvalidPrompt naming the first limit the request breaks and its variable."""
    try:
        check_prompt_limits(params, limits)
    except LimitExceeded as exc:
        raise InvalidPrompt(f"{exc} (CONTROLLER_{exc.setting.upper()})") from None

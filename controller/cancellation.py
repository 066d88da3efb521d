"""Cancellation that survives libraries which swallow it."""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise CancelledError when the current task was asked to stop.

    Some clients (redis-py among them) turn a cancellation into their own connection error or
    swallow it; a background loop that checks this after each step still ends at shutdown.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError

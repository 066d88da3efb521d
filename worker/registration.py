"""Register with the controller (retrying with backoff), heartbeat, re-register when asked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

FIRST_RETRY_S = 0.5


class Registrar:
    """Keeps this worker known to one controller for as long as `run()` runs."""

    def __init__(
        self,
        *,
        controller_address: str,
        worker_address: str,
        status: Callable[[], dict[str, Any]],
        heart_beat_interval_s: float = 15.0,
        retry_max_s: float = 10.0,
        timeout_s: float = 5.0,
        first_retry_s: float = FIRST_RETRY_S,
        token: str | None = None,
    ) -> None:
        self._controller = controller_address.rstrip("/")
        self._worker = worker_address
        self._status = status
        self._heart_beat_interval_s = heart_beat_interval_s
        self._retry_max_s = retry_max_s
        self._first_retry_s = min(first_retry_s, retry_max_s)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.registrations = 0
        self.heart_beats = 0

    async def run(self) -> None:
        """Register, then heartbeat; on `exist: false` or an unreachable controller, start over."""
        async with aiohttp.ClientSession(timeout=self._timeout, headers=self._headers) as session:
            while True:
                await self._register_with_backoff(session)
                await self._heart_beat_until_lost(session)

    async def _register_with_backoff(self, session: aiohttp.ClientSession) -> None:
        delay_s = self._first_retry_s
        while True:
            try:
                await self._register(session)
            except (TimeoutError, aiohttp.ClientError) as exc:
                logger.warning(
                    "cannot register with controller %s (%s); retrying in %.1f s",
                    self._controller, _describe(exc), delay_s,
                )
            else:
                self.registrations += 1
                logger.info("registered %s with controller %s", self._worker, self._controller)
                return
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, self._retry_max_s)

    async def _register(self, session: aiohttp.ClientSession) -> None:
        status = self._status()
        body = {
            "worker_name": self._worker,
            "check_heart_beat": True,
            "worker_status": status,
            # FastChat's field name for "takes images"; the controller reads it at registration.
            "multimodal": bool(status.get("multimodal", False)),
        }
        async with session.post(f"{self._controller}/register_worker", json=body) as response:
            if response.status >= 400:
                detail = (await response.text())[:300]
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message=detail
                )

    async def _heart_beat_until_lost(self, session: aiohttp.ClientSession) -> None:
        """Return when the controller forgot this worker or stopped answering."""
        while True:
            await asyncio.sleep(self._heart_beat_interval_s)
            body = {"worker_name": self._worker, "queue_length": self._status()["queue_length"]}
            try:
                async with session.post(
                    f"{self._controller}/receive_heart_beat", json=body
                ) as response:
                    response.raise_for_status()
                    answer = await response.json()
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                # A restarted controller has forgotten us; registering again is the way back.
                logger.warning(
                    "heartbeat to %s failed (%s); registering again", self._controller,
                    _describe(exc),
                )
                return
            self.heart_beats += 1
            if not (isinstance(answer, dict) and answer.get("exist")):
                logger.info("controller %s does not know this worker; registering again",
                            self._controller)
                return


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientResponseError):
        hint = ""
        if exc.status in (401, 403):
            hint = (
                "; set --controller-token (WORKER_CONTROLLER_TOKEN) to the controller's "
                "worker token"
            )
        return f"HTTP {exc.status}: {exc.message}{hint}"
    return str(exc) or type(exc).__name__

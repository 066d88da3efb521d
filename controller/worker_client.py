"""Async calls from the controller to workers, over one pooled aiohttp session."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import aiohttp

from controller.errors import InvalidWorkerStatus, WorkerUnreachable
from controller.registry import WorkerStatus


def new_session() -> aiohttp.ClientSession:
    """The controller's one client session: unlimited pool (1,000 streams at once are normal)."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    # Workers are never proxied through the environment's HTTP proxy: they are peers.
    return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False)


def parse_worker_status(data: Any, multimodal: bool | None = None) -> WorkerStatus:
    """A WorkerStatus from a worker's JSON, with errors that name the wrong field."""
    if not isinstance(data, dict):
        raise InvalidWorkerStatus(f"worker status must be a JSON object, got {type(data).__name__}")
    names = data.get("model_names")
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InvalidWorkerStatus("worker status model_names must be a list of non-empty strings")
    speed = data.get("speed", 1)
    if isinstance(speed, bool) or not isinstance(speed, int | float):
        raise InvalidWorkerStatus(f"worker status speed must be a number, got {speed!r}")
    queue_length = data.get("queue_length", 0)
    if isinstance(queue_length, bool) or not isinstance(queue_length, int):
        raise InvalidWorkerStatus(
            f"worker status queue_length must be an integer, got {queue_length!r}"
        )
    takes_images = data.get("multimodal", False) if multimodal is None else multimodal
    return WorkerStatus(tuple(dict.fromkeys(names)), float(speed), queue_length, bool(takes_images))


class WorkerClient:
    """Status calls to workers, each bounded by its own timeout."""

    def __init__(self, session: aiohttp.ClientSession, status_timeout_s: float) -> None:
        self.session = session
        self.status_timeout_s = status_timeout_s

    async def get_status(self, address: str) -> WorkerStatus:
        """Ask one worker for its status; WorkerUnreachable names the worker and the cause."""
        # aiohttp rounds timeouts above ceil_threshold up to a whole second of the loop
        # clock (5 s could fire after 6); a status timeout should mean what it says.
        timeout = aiohttp.ClientTimeout(total=self.status_timeout_s, ceil_threshold=3600)
        try:
            async with self.session.post(
                f"{address}/worker_get_status", timeout=timeout, allow_redirects=False
            ) as response:
                if response.status != 200:
                    raise WorkerUnreachable(
                        f"worker {address} answered /worker_get_status with HTTP {response.status}"
                    )
                body = await response.read()
        except TimeoutError:
            raise WorkerUnreachable(
                f"worker {address} did not answer /worker_get_status within "
                f"{self.status_timeout_s:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise WorkerUnreachable(f"worker {address} is unreachable: {exc}") from None
        try:
            data = json.loads(body)
        except ValueError:
            raise WorkerUnreachable(
                f"worker {address} answered /worker_get_status with invalid JSON"
            ) from None
        return parse_worker_status(data)

    async def get_statuses(
        self, addresses: Iterable[str]
    ) -> dict[str, WorkerStatus | Exception]:
        """Ask many workers at once: the whole call takes at most one status timeout."""
        addresses = list(addresses)
        results = await asyncio.gather(
            *(self.get_status(a) for a in addresses), return_exceptions=True
        )
        return dict(zip(addresses, results, strict=True))

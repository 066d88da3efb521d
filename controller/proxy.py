"""The streaming proxy: forward a worker's frames to the client, failing over before the first.

Frames are forwarded as they arrive, cut at frame boundaries so that an error frame appended
after a failure never lands inside a half-sent frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp

from controller.registry import Registry
from controller.stats import ActivityStats
from protocol.frames import FRAME_SEPARATOR, NO_WORKER, WORKER_FAILED, error_frame

_JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class ProxyTimeouts:
    connect_s: float
    first_frame_s: float
    idle_s: float


class _FailedBeforeFirstFrame(Exception):
    """The worker gave nothing usable: another worker may take the request."""


class StreamProxy:
    """Streams one generation request through a worker chosen by dispatch."""

    def __init__(
        self,
        registry: Registry,
        session: aiohttp.ClientSession,
        timeouts: ProxyTimeouts,
        max_attempts: int,
        dispatch_method: Callable[[], str],
        stats: ActivityStats,
    ) -> None:
        self.registry = registry
        self.session = session
        self.timeouts = timeouts
        self.max_attempts = max_attempts
        self.dispatch_method = dispatch_method
        self.stats = stats
        self._client_timeout = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect_s, sock_connect=timeouts.connect_s
        )

    async def stream(self, model: str, body: bytes) -> AsyncIterator[bytes]:
        """The bytes to send to the client: the worker's frames, or exactly one error frame."""
        self.stats.record_request()
        tried: list[str] = []
        failures: list[str] = []
        while len(tried) < self.max_attempts:
            address = self.registry.dispatch(
                model, self.dispatch_method(), exclude=tried, stream=True
            )
            if address is None:
                break
            tried.append(address)
            try:
                async for chunk in self._relay(address, body):
                    yield chunk
                return
            except _FailedBeforeFirstFrame as failure:
                failures.append(str(failure))
            finally:
                self.registry.stream_ended(address)
        self.stats.record_error()
        if not tried:
            yield error_frame(f"no worker serves model {model!r}", NO_WORKER)
        else:
            yield error_frame(
                f"model {model!r}: no worker answered ({'; '.join(failures)})", WORKER_FAILED
            )

    async def _relay(self, address: str, body: bytes) -> AsyncIterator[bytes]:
        url = f"{address}/worker_generate_stream"
        timeouts = self.timeouts
        response: aiohttp.ClientResponse | None = None
        try:
            try:
                async with asyncio.timeout(timeouts.first_frame_s):
                    response = await self.session.post(
                        url, data=body, headers=_JSON_HEADERS,
                        timeout=self._client_timeout, allow_redirects=False,
                    )
                    if response.status != 200:
                        detail = (await response.content.read(300)).decode(errors="replace")
                        raise _FailedBeforeFirstFrame(
                            f"worker {address} answered HTTP {response.status}: {detail}"
                        )
                    first = await self._read_frames(response, b"")
            except TimeoutError:
                raise _FailedBeforeFirstFrame(
                    f"worker {address} sent no frame within {timeouts.first_frame_s:g} s"
                ) from None
            except aiohttp.ClientError as exc:
                raise _FailedBeforeFirstFrame(f"worker {address} failed: {exc}") from None
            complete, pending, eof = first
            if not complete:
                if eof and pending.strip():
                    yield pending + FRAME_SEPARATOR  # one frame without its separator
                    return
                raise _FailedBeforeFirstFrame(f"worker {address} closed the stream without a frame")
            yield complete
            if eof:
                return
            # After the first frame the answer belongs to this worker: no failover any more.
            while True:
                try:
                    async with asyncio.timeout(timeouts.idle_s):
                        frames = await self._read_frames(response, pending)
                except TimeoutError:
                    self.stats.record_error()
                    yield error_frame(
                        f"worker {address} stopped sending for {timeouts.idle_s:g} s "
                        "in the middle of the answer", WORKER_FAILED,
                    )
                    return
                except aiohttp.ClientError as exc:
                    self.stats.record_error()
                    yield error_frame(
                        f"worker {address} failed in the middle of the answer: {exc}",
                        WORKER_FAILED,
                    )
                    return
                complete, pending, eof = frames
                if complete:
                    yield complete
                if eof:
                    if pending.strip():
                        # The last frame had no separator; pass it on whole.
                        yield pending + FRAME_SEPARATOR
                    return
        finally:
            if response is not None:
                # Closing (not releasing) drops the connection, so a worker still generating
                # for a client that went away sees the disconnect and stops.
                response.close()

    @staticmethod
    async def _read_frames(
        response: aiohttp.ClientResponse, pending: bytes
    ) -> tuple[bytes, bytes, bool]:
        """Read until a whole frame is buffered or the stream ends: (frames, rest, at_eof)."""
        while True:
            chunk = await response.content.readany()
            if not chunk:
                return b"", pending, True
            data = pending + chunk if pending else chunk
            cut = data.rfind(FRAME_SEPARATOR)
            if cut >= 0:
                return data[: cut + 1], data[cut + 1 :], False
            pending = data

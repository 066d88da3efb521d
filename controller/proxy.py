"""The streaming proxy: forward a worker's frames to the client, failing over before the first.

Frames are forwarded as they arrive, cut at frame boundaries so that an error frame appended
after a failure never lands inside a half-sent frame. This is the controller's hot path: one
generator level per stream and no per-frame timer objects (an idle watchdog re-arms itself once
per idle period instead).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp

from controller.metrics import ControllerMetrics
from controller.registry import Registry
from controller.stats import ActivityStats
from protocol.frames import BAD_REQUEST, FRAME_SEPARATOR, NO_WORKER, WORKER_FAILED, error_frame

_JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class ProxyTimeouts:
    connect_s: float
    first_frame_s: float
    idle_s: float


class _IdleTimeout(Exception):
    """Raised into a stream reader by the watchdog when a worker stops sending."""


class _IdleWatchdog:
    """Fails a stream reader when nothing arrived for `idle_s`; `touch()` costs one clock read."""

    __slots__ = ("_content", "_handle", "_idle_s", "_loop", "last_activity")

    def __init__(self, content: aiohttp.StreamReader, idle_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._content = content
        self._idle_s = idle_s
        self.last_activity = self._loop.time()
        self._handle = self._loop.call_at(self.last_activity + idle_s, self._check)

    def touch(self) -> None:
        self.last_activity = self._loop.time()

    def _check(self) -> None:
        if self._loop.time() - self.last_activity >= self._idle_s:
            self._content.set_exception(_IdleTimeout())
        else:
            self._handle = self._loop.call_at(self.last_activity + self._idle_s, self._check)

    def cancel(self) -> None:
        self._handle.cancel()


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
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self.metrics = metrics or ControllerMetrics()
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
        # One generator level on purpose: every frame of every answer passes through here.
        started = time.perf_counter()
        self.stats.record_request()
        try:
            timeouts = self.timeouts
            registry = self.registry
            tried: list[str] = []
            failures: list[str] = []
            while len(tried) < self.max_attempts:
                address = registry.dispatch(
                    model, self.dispatch_method(), exclude=tried, stream=True
                )
                if address is None:
                    break
                tried.append(address)
                response: aiohttp.ClientResponse | None = None
                try:
                    # Until the first frame the request may move to another worker.
                    failure = None
                    try:
                        async with asyncio.timeout(timeouts.first_frame_s):
                            response = await self.session.post(
                                f"{address}/worker_generate_stream", data=body,
                                headers=_JSON_HEADERS, timeout=self._client_timeout,
                                allow_redirects=False,
                            )
                            if response.status != 200:
                                detail = await response.content.read(300)
                                failure = (
                                    f"worker {address} answered HTTP {response.status}: "
                                    f"{detail.decode(errors='replace')}"
                                )
                            else:
                                complete, pending, eof = await _read_frames(response.content, b"")
                                if not complete and not pending.strip():
                                    failure = f"worker {address} closed the stream without a frame"
                    except TimeoutError:
                        failure = (
                            f"worker {address} sent no frame within {timeouts.first_frame_s:g} s"
                        )
                    except aiohttp.ClientError as exc:
                        failure = f"worker {address} failed: {exc}"
                    if failure is not None:
                        failures.append(failure)
                        registry.record_failure(address)
                        continue
                    self.metrics.first_frame_s.observe(time.perf_counter() - started)
                    if complete:
                        yield complete
                    # From here on the answer belongs to this worker: no failover any more.
                    last = complete
                    watchdog = _IdleWatchdog(response.content, timeouts.idle_s)
                    try:
                        while not eof:
                            watchdog.touch()
                            try:
                                complete, pending, eof = await _read_frames(
                                    response.content, pending
                                )
                            except _IdleTimeout:
                                registry.record_failure(address)
                                yield self._fail(WORKER_FAILED, (
                                    f"worker {address} stopped sending for {timeouts.idle_s:g} s "
                                    "in the middle of the answer"
                                ))
                                return
                            except aiohttp.ClientError as exc:
                                registry.record_failure(address)
                                yield self._fail(WORKER_FAILED, (
                                    f"worker {address} failed in the middle of the answer: {exc}"
                                ))
                                return
                            if complete:
                                last = complete
                                yield complete
                    finally:
                        watchdog.cancel()
                    if pending.strip():
                        last = pending + FRAME_SEPARATOR
                        yield last  # a last frame sent without its separator
                    self._judge_last_frame(address, last)
                    return
                finally:
                    if response is not None:
                        # Closing (not releasing) drops the connection, so a worker still
                        # generating for a client that went away sees it and stops.
                        response.close()
                    registry.stream_ended(address)
            if tried:
                yield self._fail(
                    WORKER_FAILED, f"model {model!r}: no worker answered ({'; '.join(failures)})"
                )
                return
            wait_s = registry.cooling_down(model)
            if wait_s is not None:
                yield self._fail(WORKER_FAILED, (
                    f"every worker of model {model!r} failed repeatedly and is out of dispatch "
                    f"(circuit breaker); the next try is in {wait_s:.0f} s"
                ))
            else:
                yield self._fail(NO_WORKER, f"no worker serves model {model!r}")
        finally:
            self.metrics.stream_duration_s.observe(time.perf_counter() - started)

    def _fail(self, code: int, message: str) -> bytes:
        self.stats.record_error()
        self.metrics.stream_errors[code] += 1
        return error_frame(message, code)

    def _judge_last_frame(self, address: str, last: bytes) -> None:
        """An answer that ends in a worker-side error frame counts as a failure of the worker."""
        raw = last.rstrip(FRAME_SEPARATOR).rpartition(FRAME_SEPARATOR)[2]
        try:
            code = json.loads(raw).get("error_code", 0)
        except (ValueError, AttributeError):
            code = 0
        if code:
            self.metrics.stream_errors[code] += 1
        if code and not _is_client_error(code):
            self.registry.record_failure(address)
        else:
            self.registry.record_success(address)


def _is_client_error(code: int) -> bool:
    """Error codes that blame the request, not the worker (ours, and FastChat's 4xxxx)."""
    return code == BAD_REQUEST or 40000 <= code < 50000


async def _read_frames(content: aiohttp.StreamReader, pending: bytes) -> tuple[bytes, bytes, bool]:
    """Read until a whole frame is buffered or the stream ends: (frames, rest, at_eof)."""
    while True:
        chunk = await content.readany()
        if not chunk:
            return b"", pending, True
        data = pending + chunk if pending else chunk
        cut = data.rfind(FRAME_SEPARATOR)
        if cut >= 0:
            return data[: cut + 1], data[cut + 1 :], False
        pending = data

"""A FIFO slot limiter with exact counters of running and waiting generations."""

from __future__ import annotations

import asyncio
from collections import deque


class SlotLimiter:
    """At most `limit` holders at once, the rest wait in arrival order; event-loop only."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self._running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def running(self) -> int:
        """Holders of a slot."""
        return self._running

    @property
    def waiting(self) -> int:
        """Callers queued for a slot."""
        return len(self._waiters)

    @property
    def queue_length(self) -> int:
        """Running plus waiting: what the worker reports to the controller."""
        return self._running + len(self._waiters)

    async def acquire(self) -> None:
        """Take a slot, waiting in line if all are taken; a cancelled wait leaves no trace."""
        if self._running < self.limit and not self._waiters:
            self._running += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over just as the caller gave up: pass it on.
                self.release()
            elif waiter in self._waiters:
                # release() may already have dropped it while skipping cancelled waiters.
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back, handing it straight to the longest waiter if there is one."""
        if self._running <= 0:
            raise RuntimeError("release() without a matching acquire()")
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                # The slot moves to the waiter, so `running` stays the same.
                waiter.set_result(None)
                return
        self._running -= 1

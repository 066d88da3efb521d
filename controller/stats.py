"""A bounded time series of controller activity, kept once for every admin page viewer."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class StatsPoint:
    t: float  # unix seconds at the end of the interval
    requests: int
    errors: int
    in_flight: int
    queue_length: Mapping[str, int]


class ActivityStats:
    """Counts proxied requests and errors per interval in a ring buffer."""

    def __init__(
        self, interval_s: float, window_s: float, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.interval_s = interval_s
        self._points: deque[StatsPoint] = deque(maxlen=max(1, int(window_s / interval_s)))
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._requests = 0
        self._errors = 0
        self.total_requests = 0
        self.total_errors = 0

    def record_request(self) -> None:
        # Called from the event loop only; the lock guards the reader in close_interval.
        self._requests += 1
        self.total_requests += 1

    def record_error(self) -> None:
        self._errors += 1
        self.total_errors += 1

    def close_interval(self, in_flight: int, queue_length: Mapping[str, int]) -> StatsPoint:
        """End the current interval and append its point."""
        with self._lock:
            point = StatsPoint(
                self._wall_clock(), self._requests, self._errors, in_flight, dict(queue_length)
            )
            self._requests = 0
            self._errors = 0
            self._points.append(point)
        return point

    def points(self) -> list[StatsPoint]:
        with self._lock:
            return list(self._points)

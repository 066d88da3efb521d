"""Counters and histograms of the controller, exposed in Prometheus format at `GET /metrics`.

The hot path only bumps plain integers; prometheus-client builds the text at scrape time from a
collector that reads them, so metrics cost nothing measurable per request.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

if TYPE_CHECKING:
    from controller.registry import Registry

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_DURATION_BUCKETS_S = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class Histogram:
    """Cumulative-bucket histogram with plain counters."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        running, result = 0, []
        for bound, count in zip((*map(str, self.buckets), "+Inf"), self.counts, strict=True):
            running += count
            result.append((bound, running))
        return result


class ControllerMetrics:
    """What the controller counts; read by the collector at scrape time."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.stream_errors: Counter[int] = Counter()
        self.first_frame_s = Histogram(_LATENCY_BUCKETS_S)
        self.stream_duration_s = Histogram(_DURATION_BUCKETS_S)

    def exposition(self, registry: Registry) -> bytes:
        collectors = CollectorRegistry(auto_describe=False)
        collectors.register(_Collector(self, registry))
        return generate_latest(collectors)


class _Collector:
    def __init__(self, metrics: ControllerMetrics, registry: Registry) -> None:
        self.metrics = metrics
        self.registry = registry

    def collect(self) -> Iterator[object]:
        m = self.metrics
        requests = CounterMetricFamily(
            "controller_http_requests", "HTTP requests by endpoint and status code",
            labels=["endpoint", "code"],
        )
        for (endpoint, code), count in sorted(m.requests.items()):
            requests.add_metric([endpoint, str(code)], count)
        yield requests

        errors = CounterMetricFamily(
            "controller_stream_errors", "streams that ended with an error frame, by error code",
            labels=["error_code"],
        )
        for code, count in sorted(m.stream_errors.items()):
            errors.add_metric([str(code)], count)
        yield errors

        dispatches = CounterMetricFamily(
            "controller_dispatches", "requests dispatched, by worker and model",
            labels=["worker", "model"],
        )
        for (worker, model), count in sorted(self.registry.dispatch_counts.items()):
            dispatches.add_metric([worker, model], count)
        yield dispatches

        for name, help_text, histogram in (
            ("controller_stream_first_frame_seconds", "time to a stream's first frame",
             m.first_frame_s),
            ("controller_stream_duration_seconds", "duration of proxied streams",
             m.stream_duration_s),
        ):
            family = HistogramMetricFamily(name, help_text)
            family.add_metric([], histogram.cumulative(), histogram.total)
            yield family

        views = self.registry.views()
        in_flight = GaugeMetricFamily("controller_requests_in_flight",
                                      "streams being proxied now")
        in_flight.add_metric([], sum(v.in_flight for v in views))
        yield in_flight

        by_status = GaugeMetricFamily("controller_workers", "registered workers by health",
                                      labels=["status"])
        counts = Counter(v.status for v in views)
        for status in ("healthy", "late", "expired"):
            by_status.add_metric([status], counts[status])
        yield by_status

        breaker = GaugeMetricFamily(
            "controller_worker_breaker_state",
            "circuit breaker per worker: 0 closed, 1 half-open (probing), 2 open",
            labels=["worker"],
        )
        for view in views:
            breaker.add_metric([view.address], _BREAKER_VALUE[view.breaker])
        yield breaker

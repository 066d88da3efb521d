"""Circuit breaker per worker and the Prometheus metrics, over real HTTP."""

from __future__ import annotations

import random

import requests

from controller.registry import Registry, WorkerStatus
from tests.controller.conftest import FakeClock
from tests.controller.peers import read_frames, register


def stream(url: str, model: str = "m") -> list[dict]:
    response = requests.post(url + "/worker_generate_stream", json={"model": model},
                             stream=True, timeout=30)
    return read_frames(response)


def views(url: str) -> dict[str, dict]:
    return {v["address"]: v for v in requests.get(url + "/workers", timeout=5).json()["workers"]}


def test_repeatedly_failing_worker_leaves_dispatch_and_is_probed_back(
    start_controller, start_worker, clock: FakeClock
) -> None:
    registry = Registry(30, clock=clock, breaker_failures=2, breaker_cooldown_s=10)
    url = start_controller(registry=registry, max_attempts=1).url
    flaky = start_worker(model_names=["m"], status_code=500, words=1)
    register(url, flaky.url, flaky.status(), check_heart_beat=False)
    assert [f["error_code"] for f in stream(url)] == [3]
    assert views(url)[flaky.url]["breaker"] == "closed"
    assert [f["error_code"] for f in stream(url)] == [3]
    assert (views(url)[flaky.url]["breaker"], views(url)[flaky.url]["consecutive_failures"]) == (
        "open", 2
    )
    # Open: the worker gets nothing, and the error says why and when it is tried again.
    frames = stream(url)
    assert len(flaky.requests) == 2
    assert "circuit breaker" in frames[0]["text"] and "10 s" in frames[0]["text"]
    # After the cool-down one probe goes through; it succeeds, so the breaker closes.
    clock.advance(10)
    assert views(url)[flaky.url]["breaker"] == "half_open"
    flaky.behaviour.status_code = 200
    assert [f["error_code"] for f in stream(url)] == [0]
    assert views(url)[flaky.url]["breaker"] == "closed"


def test_worker_error_frames_count_as_failures_but_bad_requests_do_not(clock) -> None:
    registry = Registry(30, clock=clock, breaker_failures=1)
    registry.register("http://w:1", WorkerStatus(("m",), 1, 0), False)
    registry.record_failure("http://w:1")
    assert registry.views()[0].breaker == "open"
    assert registry.dispatch("m", "shortest_queue") is None
    clock.advance(30)
    assert registry.dispatch("m", "shortest_queue") == "http://w:1"  # the probe
    assert registry.dispatch("m", "shortest_queue") is None  # one probe at a time
    registry.record_success("http://w:1")
    assert registry.dispatch("m", "shortest_queue") == "http://w:1"


def test_half_open_probe_failing_reopens_the_breaker(clock) -> None:
    registry = Registry(30, clock=clock, breaker_failures=3, breaker_cooldown_s=5,
                        rng=random.Random(0))
    registry.register("http://w:1", WorkerStatus(("m",), 1, 0), False)
    for _ in range(3):
        registry.record_failure("http://w:1")
    clock.advance(5)
    assert registry.dispatch("m", "lottery") == "http://w:1"
    registry.record_failure("http://w:1")
    assert registry.views()[0].breaker == "open"


def test_metrics_report_requests_dispatches_latency_and_workers(
    controller_url, start_worker
) -> None:
    worker = start_worker(model_names=["m"], words=2)
    register(controller_url, worker.url, worker.status())
    stream(controller_url)
    stream(controller_url, "missing")
    requests.post(controller_url + "/get_worker_address", json={"model": "m"}, timeout=5)
    requests.post(controller_url + "/register_worker", json={"worker_name": "ftp://x"},
                  timeout=5)
    text = requests.get(controller_url + "/metrics", timeout=5).text
    lines = set(text.splitlines())
    stream_path = "/worker_generate_stream"
    assert f'controller_http_requests_total{{code="200",endpoint="{stream_path}"}} 2.0' in lines
    assert 'controller_http_requests_total{code="422",endpoint="/register_worker"} 1.0' in lines
    assert 'controller_stream_errors_total{error_code="2"} 1.0' in lines
    assert f'controller_dispatches_total{{model="m",worker="{worker.url}"}} 2.0' in lines
    assert "controller_stream_first_frame_seconds_count 1.0" in lines
    assert "controller_stream_duration_seconds_count 2.0" in lines
    assert 'controller_workers{status="healthy"} 1.0' in lines
    assert f'controller_worker_breaker_state{{worker="{worker.url}"}} 0.0' in lines
    assert "controller_requests_in_flight 0.0" in lines


def test_unknown_paths_share_one_metrics_label(controller_url) -> None:
    for i in range(5):
        requests.get(controller_url + f"/probe-{i}", timeout=5)
    text = requests.get(controller_url + "/metrics", timeout=5).text
    assert 'controller_http_requests_total{code="404",endpoint="other"} 5.0' in text
    assert "probe-" not in text

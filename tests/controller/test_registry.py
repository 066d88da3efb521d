"""The worker registry: membership, heartbeats, expiry, load accounting, thread safety."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from controller.errors import InvalidWorkerStatus, UnknownDispatchMethod
from controller.registry import Registry, WorkerStatus
from tests.controller.conftest import FakeClock


def status(*models: str, speed: float = 1, queue: int = 0, multimodal: bool = False):
    return WorkerStatus(models or ("m",), speed, queue, multimodal)


@pytest.fixture
def registry(clock: FakeClock) -> Registry:
    return Registry(heart_beat_expiration_s=30, clock=clock, rng=random.Random(1))


def test_speed_must_be_positive() -> None:
    with pytest.raises(InvalidWorkerStatus, match="speed must be > 0"):
        status(speed=0)
    with pytest.raises(InvalidWorkerStatus, match="speed must be > 0"):
        status(speed=-2)


def test_negative_queue_length_is_refused(registry: Registry) -> None:
    registry.register("http://w1:1", status(), True)
    with pytest.raises(InvalidWorkerStatus, match="queue_length"):
        registry.heartbeat("http://w1:1", -1)
    assert registry.views()[0].queue_length == 0


def test_heartbeat_from_unknown_worker_answers_not_exist(registry: Registry) -> None:
    assert registry.heartbeat("http://nobody:1", 0) is False
    registry.register("http://w1:1", status(), True)
    assert registry.heartbeat("http://w1:1", 3) is True


def test_expired_worker_is_removed(registry: Registry, clock: FakeClock) -> None:
    registry.register("http://w1:1", status("a"), True)
    registry.register("http://w2:1", status("a"), True)
    clock.advance(20)
    registry.heartbeat("http://w2:1", 0)
    clock.advance(10.5)
    assert registry.expire() == ["http://w1:1"]
    assert registry.addresses() == ["http://w2:1"]


def test_worker_without_heartbeat_check_never_expires(registry: Registry, clock: FakeClock) -> None:
    registry.register("http://w1:1", status(), False)
    clock.advance(10_000)
    assert registry.expire() == []
    assert registry.views()[0].status == "healthy"


def test_expired_worker_gets_no_dispatch_before_the_sweep(
    registry: Registry, clock: FakeClock
) -> None:
    registry.register("http://w1:1", status("a"), True)
    clock.advance(31)
    assert registry.dispatch("a", "shortest_queue") is None


def test_health_is_late_after_half_the_expiry(registry: Registry, clock: FakeClock) -> None:
    registry.register("http://w1:1", status(), True)
    clock.advance(16)
    assert registry.views()[0].status == "late"
    clock.advance(15)
    assert registry.views()[0].status == "expired"


def test_burst_spreads_evenly_over_equal_idle_workers(registry: Registry) -> None:
    for i in range(4):
        registry.register(f"http://w{i}:1", status("a"), True)
    chosen = Counter(registry.dispatch("a", "shortest_queue") for _ in range(100))
    assert sorted(chosen.values()) == [25, 25, 25, 25]


def test_burst_with_lottery_is_weighted_by_speed(registry: Registry) -> None:
    registry.register("http://slow:1", status("a", speed=1), True)
    registry.register("http://fast:1", status("a", speed=3), True)
    chosen = Counter(registry.dispatch("a", "lottery") for _ in range(4000))
    assert 0.70 < chosen["http://fast:1"] / 4000 < 0.80


def test_shortest_queue_prefers_least_load_per_speed(registry: Registry) -> None:
    registry.register("http://busy:1", status("a", queue=4, speed=1), True)
    registry.register("http://fast:1", status("a", queue=4, speed=4), True)
    assert registry.dispatch("a", "shortest_queue") == "http://fast:1"


def test_heartbeat_resets_what_was_dispatched_since_the_last_report(registry: Registry) -> None:
    registry.register("http://w1:1", status("a"), True)
    for _ in range(3):
        registry.dispatch("a", "shortest_queue")
    assert registry.views()[0].load == 3
    registry.heartbeat("http://w1:1", 1)
    assert registry.views()[0].load == 1


def test_streams_in_flight_are_counted_exactly(registry: Registry) -> None:
    registry.register("http://w1:1", status("a"), True)
    for _ in range(3):
        registry.dispatch("a", "shortest_queue", stream=True)
    registry.heartbeat("http://w1:1", 3)  # the worker reports the same three
    assert registry.views()[0].in_flight == 3
    registry.stream_ended("http://w1:1")
    view = registry.views()[0]
    assert (view.in_flight, view.load) == (2, 2)
    registry.stream_ended("http://w1:1")
    registry.stream_ended("http://w1:1")
    registry.stream_ended("http://w1:1")  # one too many must not go negative
    view = registry.views()[0]
    assert (view.in_flight, view.load) == (0, 0)


def test_dispatch_excludes_named_workers(registry: Registry) -> None:
    registry.register("http://w1:1", status("a"), True)
    registry.register("http://w2:1", status("a"), True)
    assert registry.dispatch("a", "lottery", exclude=["http://w1:1"]) == "http://w2:1"
    assert registry.dispatch("a", "lottery", exclude=["http://w1:1", "http://w2:1"]) is None


def test_unknown_dispatch_method_is_named(registry: Registry) -> None:
    registry.register("http://w1:1", status("a"), True)
    with pytest.raises(UnknownDispatchMethod, match=r"'fastest'.*lottery, shortest_queue"):
        registry.dispatch("a", "fastest")


def test_models_report_whether_any_worker_takes_images(registry: Registry) -> None:
    registry.register("http://w1:1", status("vl", "text", multimodal=True), True)
    registry.register("http://w2:1", status("text"), True)
    models = {m.name: (m.multimodal, m.workers) for m in registry.models()}
    assert models == {"vl": (True, 1), "text": (True, 2)}


def test_reregistration_keeps_streams_in_flight(registry: Registry) -> None:
    registry.register("http://w1:1", status("a"), True)
    registry.dispatch("a", "shortest_queue", stream=True)
    registry.register("http://w1:1", status("a", "b"), True)
    view = registry.views()[0]
    assert view.in_flight == 1
    assert registry.list_models() == ["a", "b"]


def test_concurrent_use_from_threads_loses_no_count(registry: Registry) -> None:
    for i in range(4):
        registry.register(f"http://w{i}:1", status("a"), True)
    start = threading.Barrier(8)
    chosen: list[str] = []

    def hammer() -> None:
        start.wait()
        for _ in range(500):
            address = registry.dispatch("a", "shortest_queue", stream=True)
            chosen.append(address)
            registry.views()
            registry.stream_ended(address)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(chosen) == 4000
    assert all(v.in_flight == 0 for v in registry.views())

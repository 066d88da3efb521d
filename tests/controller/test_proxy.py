"""The streaming proxy over real HTTP: forwarding, failover, errors, disconnects, accounting."""

from __future__ import annotations

import threading

import requests

from tests.controller.peers import HungWorker, read_frames, register


def stream(url: str, model: str, **kwargs) -> requests.Response:
    return requests.post(url + "/worker_generate_stream",
                         json={"model": model, "prompt": [{"role": "user", "content": "hi"}]},
                         stream=True, timeout=30, **kwargs)


def in_flight(url: str) -> dict[str, int]:
    views = requests.get(url + "/workers", timeout=5).json()["workers"]
    return {v["address"]: v["in_flight"] for v in views}


def test_no_worker_gives_exactly_one_error_frame_naming_the_model(controller_url) -> None:
    frames = read_frames(stream(controller_url, "InternVL2-8B"))
    assert len(frames) == 1
    assert frames[0]["error_code"] == 2
    assert "InternVL2-8B" in frames[0]["text"]


def test_frames_are_forwarded_as_they_arrive(controller_url, start_worker) -> None:
    release = threading.Event()
    worker = start_worker(model_names=["m"], words=3, hold_after_first=release)
    register(controller_url, worker.url, worker.status())
    response = stream(controller_url, "m")
    lines = response.iter_lines(delimiter=b"\0")
    # The worker holds its second frame until released: the first must already be here.
    assert b"word0" in next(lines)
    release.set()
    rest = [line for line in lines if line]
    assert len(rest) == 2


def test_in_flight_is_counted_while_streaming_and_released_after(
    controller_url, start_worker
) -> None:
    release = threading.Event()
    worker = start_worker(model_names=["m"], words=2, hold_after_first=release)
    register(controller_url, worker.url, worker.status())
    response = stream(controller_url, "m")
    # Keep the line iterator alive: dropping it would close the connection (a disconnect).
    lines = response.iter_lines(delimiter=b"\0")
    next(lines)
    assert in_flight(controller_url) == {worker.url: 1}
    release.set()
    assert len([line for line in lines if line]) == 1
    assert in_flight(controller_url) == {worker.url: 0}


def test_failover_when_the_chosen_worker_refuses(controller_url, start_worker) -> None:
    broken = start_worker(model_names=["m"], status_code=500)
    good = start_worker(model_names=["m"], words=2)
    register(controller_url, broken.url, broken.status())
    register(controller_url, good.url, good.status())
    # Make the broken one the first choice of shortest_queue by giving good a longer queue.
    requests.post(controller_url + "/receive_heart_beat",
                  json={"worker_name": good.url, "queue_length": 3}, timeout=5)
    frames = read_frames(stream(controller_url, "m"))
    assert [f["error_code"] for f in frames] == [0, 0]
    assert len(broken.requests) == 1 and len(good.requests) == 1
    assert in_flight(controller_url) == {broken.url: 0, good.url: 0}


def test_failover_when_the_chosen_worker_hangs_before_its_first_frame(
    start_controller, start_worker
) -> None:
    url = start_controller(first_frame_timeout_s=0.5, status_timeout_s=1).url
    with HungWorker() as hung:
        good = start_worker(model_names=["m"], words=2)
        register(url, hung.url, {"model_names": ["m"], "speed": 1, "queue_length": 0})
        register(url, good.url, good.status())
        requests.post(url + "/receive_heart_beat",
                      json={"worker_name": good.url, "queue_length": 5}, timeout=5)
        frames = read_frames(stream(url, "m"))
    assert [f["text"] for f in frames] == ["word0 ", "word0 word1 "]


def test_all_workers_failing_gives_one_error_frame_naming_them(
    start_controller, start_worker
) -> None:
    url = start_controller(first_frame_timeout_s=0.5).url
    broken = start_worker(model_names=["m"], status_code=503)
    with HungWorker() as hung:
        register(url, broken.url, broken.status())
        register(url, hung.url, {"model_names": ["m"], "speed": 1, "queue_length": 0})
        frames = read_frames(stream(url, "m"))
    assert len(frames) == 1
    assert frames[0]["error_code"] == 3
    assert broken.url in frames[0]["text"] and hung.url in frames[0]["text"]
    assert "0.5 s" in frames[0]["text"]


def test_worker_dying_mid_stream_gives_one_error_frame_naming_it(
    controller_url, start_worker
) -> None:
    worker = start_worker(model_names=["m"], words=5, die_after_frames=2)
    register(controller_url, worker.url, worker.status())
    frames = read_frames(stream(controller_url, "m"))
    assert [f["error_code"] for f in frames] == [0, 0, 3]
    assert worker.url in frames[-1]["text"]
    assert frames[1]["text"] == "word0 word1 "
    assert in_flight(controller_url) == {worker.url: 0}


def test_worker_going_quiet_mid_stream_hits_the_idle_timeout(
    start_controller, start_worker
) -> None:
    url = start_controller(idle_timeout_s=0.5).url
    never = threading.Event()
    worker = start_worker(model_names=["m"], words=3, hold_after_first=never)
    register(url, worker.url, worker.status())
    frames = read_frames(stream(url, "m"))
    never.set()
    assert [f["error_code"] for f in frames] == [0, 3]
    assert "0.5 s" in frames[-1]["text"] and worker.url in frames[-1]["text"]


def test_client_going_away_closes_the_upstream_request(controller_url, start_worker) -> None:
    release = threading.Event()
    worker = start_worker(model_names=["m"], words=1000, hold_after_first=release)
    register(controller_url, worker.url, worker.status())
    response = stream(controller_url, "m")
    next(response.iter_lines(delimiter=b"\0"))
    response.close()
    release.set()
    # The worker's generator ends (its finally runs) long before its 1,000 words are out.
    assert worker.closed_event.wait(10)
    assert worker.streams_closed == 1
    assert len(requests.get(controller_url + "/workers", timeout=5).json()["workers"]) == 1
    deadline_checks = 0
    while in_flight(controller_url)[worker.url] != 0 and deadline_checks < 100:
        worker.closed_event.wait(0.05)
        deadline_checks += 1
    assert in_flight(controller_url) == {worker.url: 0}


def test_stats_count_requests_and_errors(start_controller, start_worker) -> None:
    url = start_controller(stats_interval_s=0.2).url
    worker = start_worker(model_names=["m"], words=1)
    register(url, worker.url, worker.status())
    read_frames(stream(url, "m"))
    read_frames(stream(url, "missing"))
    totals = requests.get(url + "/stats", timeout=5).json()["totals"]
    assert totals == {"requests": 2, "errors": 1}

"""Several controller processes sharing one registry in a real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from controller.server import free_port
from tests.controller.peers import read_frames
from tests.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


class Replica:
    """One `python -m controller` process using the shared registry."""

    def __init__(self, redis_url: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controller", "--host", "127.0.0.1", "--port", str(self.port),
             "--registry-url", redis_url, "--registry-sync-interval", "0.05",
             "--sweep-interval", "0.2", "--log-level", "warning", *extra],
            cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(lambda: self.post("/list_models").ok, f"controller on {self.port}")

    def post(self, path: str, body: object = None) -> requests.Response:
        return requests.post(self.url + path, json=body, timeout=5)

    def get(self, path: str) -> dict:
        return requests.get(self.url + path, timeout=5).json()

    def models(self) -> list[str]:
        return self.post("/list_models").json()["models"]

    def workers(self) -> dict[str, dict]:
        return {w["address"]: w for w in self.get("/workers")["workers"]}

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> str:
        """Stop the process; return what it printed."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                output, _ = self.process.communicate()
                raise AssertionError(f"controller did not stop on SIGTERM:\n{output}") from None
        return self.process.communicate()[0]


def wait_for(condition: Callable[[], bool], what: str, limit_s: float = 20) -> None:
    """Poll state that other processes change (there is no event to wait on)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def replicas(redis_server) -> Iterator[Callable[..., Replica]]:
    started: list[Replica] = []

    def start(*extra: str) -> Replica:
        replica = Replica(redis_server.url, *extra)
        started.append(replica)
        return replica

    yield start
    failures = []
    for replica in started:
        try:
            replica.stop()
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, failures


def status(names=("m",)) -> dict:
    return {"model_names": list(names), "speed": 1, "queue_length": 0}


def test_worker_registered_with_one_replica_is_served_by_another(replicas, start_worker) -> None:
    a, b = replicas(), replicas()
    worker = start_worker(model_names=["InternVL2-8B"], words=2)
    assert a.post("/register_worker", {"worker_name": worker.url,
                                       "worker_status": worker.status()}).ok
    wait_for(lambda: b.models() == ["InternVL2-8B"], "replica B to see the worker")
    assert b.post("/get_worker_address", {"model": "InternVL2-8B"}).json() == {
        "address": worker.url
    }
    response = requests.post(b.url + "/worker_generate_stream", stream=True, timeout=10,
                             json={"model": "InternVL2-8B", "prompt": []})
    assert [f["text"] for f in read_frames(response)] == ["word0 ", "word0 word1 "]
    health = b.get("/health")
    assert (health["registry"], health["replicas"]) == ("redis", 2)


def test_heartbeats_to_one_replica_keep_the_worker_alive_on_both(replicas) -> None:
    a, b = replicas("--heart-beat-expiration", "1.5"), replicas("--heart-beat-expiration", "1.5")
    worker = "http://127.0.0.1:9"
    assert a.post("/register_worker", {"worker_name": worker, "worker_status": status(),
                                       "check_heart_beat": True}).ok
    wait_for(lambda: b.models() == ["m"], "B to see the worker")
    beats_until = time.monotonic() + 4  # well past the 1.5 s expiry
    while time.monotonic() < beats_until:
        assert b.post("/receive_heart_beat", {"worker_name": worker,
                                              "queue_length": 1}).json() == {"exist": True}
        assert a.models() == ["m"] and b.models() == ["m"]
        time.sleep(0.3)  # the heartbeat period under test
    assert a.workers()[worker]["queue_length"] == 1
    # Heartbeats stop: both replicas forget the worker.
    wait_for(lambda: a.models() == [] and b.models() == [], "expiry on both replicas")
    assert b.post("/receive_heart_beat", {"worker_name": worker,
                                          "queue_length": 0}).json() == {"exist": False}


def test_dispatch_counters_are_shared_so_bursts_spread_over_replicas(replicas) -> None:
    a, b = replicas(), replicas()
    workers = [f"http://127.0.0.1:{9000 + i}" for i in range(4)]
    for worker in workers:
        assert a.post("/register_worker", {"worker_name": worker, "worker_status": status(),
                                           "check_heart_beat": False}).ok
    wait_for(lambda: len(b.workers()) == 4, "replica B to see four workers")
    for _ in range(40):
        a.post("/get_worker_address", {"model": "m"})
    # B sees what A dispatched: the counters live in Redis.
    wait_for(lambda: sorted(w["dispatched_since_report"] for w in b.workers().values())
             == [10, 10, 10, 10], "A's dispatch counts on B")
    # A burst through both replicas at once still spreads evenly.
    chosen: list[str] = []

    def burst(replica: Replica) -> None:
        for _ in range(30):
            chosen.append(replica.post("/get_worker_address", {"model": "m"}).json()["address"])

    threads = [threading.Thread(target=burst, args=(r,)) for r in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: sum(w["dispatched_since_report"] for w in a.workers().values()) == 100,
             "all 100 dispatches counted")
    totals = sorted(w["dispatched_since_report"] for w in a.workers().values())
    assert totals[0] >= 23 and totals[-1] <= 27, totals


def test_killing_one_replica_loses_nothing_on_the_other(replicas) -> None:
    a, b = replicas(), replicas()
    worker = "http://127.0.0.1:9"
    assert a.post("/register_worker", {"worker_name": worker, "worker_status": status(),
                                       "check_heart_beat": True}).ok
    wait_for(lambda: b.models() == ["m"], "B to see the worker")
    a.kill()
    assert b.post("/receive_heart_beat", {"worker_name": worker,
                                          "queue_length": 0}).json() == {"exist": True}
    assert b.models() == ["m"]
    assert b.post("/get_worker_address", {"model": "m"}).json() == {"address": worker}


def test_replicas_survive_redis_restarting_and_converge(replicas, redis_server) -> None:
    a, b = replicas(), replicas()
    before = "http://127.0.0.1:9001"
    assert a.post("/register_worker", {"worker_name": before, "worker_status": status(["x"]),
                                       "check_heart_beat": False}).ok
    wait_for(lambda: b.models() == ["x"], "B to see the first worker")
    redis_server.stop()
    # Outage: both keep answering from their last view and say they are degraded.
    wait_for(lambda: b.get("/health")["status"] == "degraded", "B to report degraded")
    assert a.models() == ["x"] and b.models() == ["x"]
    during = "http://127.0.0.1:9002"
    accepted = b.post("/register_worker", {"worker_name": during, "worker_status": status(["y"]),
                                           "check_heart_beat": False})
    assert accepted.ok
    assert b.models() == ["x", "y"]
    # Redis comes back empty (no persistence): the replicas publish what they know.
    redis_server.start()
    wait_for(lambda: a.get("/health")["status"] == "ok" and b.get("/health")["status"] == "ok",
             "both replicas to reconnect")
    wait_for(lambda: a.models() == ["x", "y"] and b.models() == ["x", "y"],
             "both replicas to converge")

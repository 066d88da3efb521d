"""Dispatch quality: a discrete-event simulation in virtual time, no sockets.

Workers of speeds 1, 2 and 4 each serve their own queue first come, first served, one request
at a time, with an exponential service time of mean 1/speed (an M/M/1 queue per worker; the
sizes are drawn once per request, so every policy sees the same arrivals and the same work).
Arrivals are Poisson at a fraction of the total capacity (7 requests/s). Dispatch goes through
the real `controller.registry.Registry` with its clock injected: requests are dispatched as
streams (counted exactly, `stream_ended` on completion) and every worker heartbeats its true
queue every 15 s. Policies are the real ones of `controller.dispatch.POLICIES` plus the
candidates of `bench.policies`.
"""

from __future__ import annotations

import contextlib
import heapq
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bench.policies import CANDIDATE_POLICIES
from controller.dispatch import POLICIES
from controller.registry import Registry, WorkerStatus

SPEEDS = (1.0, 2.0, 4.0)
HEART_BEAT_S = 15.0
MODEL = "sim"
_ARRIVAL, _DONE, _BEAT = 0, 1, 2


@dataclass(frozen=True)
class SimResult:
    policy: str
    load: float
    mean_s: float
    p99_s: float
    jobs: int


class _Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def candidate_policies() -> Iterator[None]:
    """Make the bench's candidate policies known to the registry for the simulation only."""
    added = [name for name in CANDIDATE_POLICIES if name not in POLICIES]
    POLICIES.update({name: CANDIDATE_POLICIES[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            del POLICIES[name]


def simulate(policy: str, load: float, jobs: int, seed: int) -> SimResult:
    """Mean and p99 completion time of `jobs` requests (the first 10% are warm-up)."""
    work = random.Random(seed)
    capacity = sum(SPEEDS)
    gaps = [work.expovariate(load * capacity) for _ in range(jobs)]
    sizes = [work.expovariate(1.0) for _ in range(jobs)]
    clock = _Clock()
    registry = Registry(heart_beat_expiration_s=1e9, clock=clock, rng=random.Random(seed + 1))
    addresses = [f"http://sim-{i}" for i in range(len(SPEEDS))]
    speed_of = dict(zip(addresses, SPEEDS, strict=True))
    for address, speed in speed_of.items():
        registry.register(address, WorkerStatus((MODEL,), speed, 0), check_heart_beat=True)
    queues: dict[str, deque[int]] = {a: deque() for a in addresses}
    arrived = [0.0] * jobs
    done = [0.0] * jobs
    events: list[tuple[float, int, int, str]] = [(gaps[0], _ARRIVAL, 0, "")]
    for i, address in enumerate(addresses):
        # Heartbeats spread over the period, as independent workers' would be.
        events.append((HEART_BEAT_S * (i + 1) / len(addresses), _BEAT, 0, address))
    heapq.heapify(events)
    finished = 0
    while finished < jobs:
        now, kind, job, address = heapq.heappop(events)
        clock.now = now
        if kind == _ARRIVAL:
            arrived[job] = now
            address = registry.dispatch(MODEL, policy, stream=True)
            queue = queues[address]
            queue.append(job)
            if len(queue) == 1:
                heapq.heappush(events, (now + sizes[job] / speed_of[address], _DONE, job, address))
            if job + 1 < jobs:
                heapq.heappush(events, (now + gaps[job + 1], _ARRIVAL, job + 1, ""))
        elif kind == _DONE:
            queue = queues[address]
            queue.popleft()
            done[job] = now
            finished += 1
            registry.stream_ended(address)
            if queue:
                head = queue[0]
                finish = now + sizes[head] / speed_of[address]
                heapq.heappush(events, (finish, _DONE, head, address))
        else:
            registry.heartbeat(address, len(queues[address]))
            heapq.heappush(events, (now + HEART_BEAT_S, _BEAT, 0, address))
    warm_up = jobs // 10
    times = np.array(done[warm_up:]) - np.array(arrived[warm_up:])
    return SimResult(policy, load, float(times.mean()), float(np.percentile(times, 99)),
                     len(times))


def run_all(jobs: int, loads: tuple[float, ...] = (0.7, 0.9), seed: int = 7) -> list[SimResult]:
    """Every policy at every load, on the same arrivals and sizes."""
    with candidate_policies():
        return [simulate(policy, load, jobs, seed) for load in loads for policy in POLICIES]

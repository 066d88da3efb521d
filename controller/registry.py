"""The worker registry: who serves what, their load, heartbeats and expiry.

Safe to use from the controller's event loop and from any other thread: every method takes one
short lock and returns plain values, never a live record. Time comes from an injected clock so
tests move it instead of sleeping.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from controller.dispatch import POLICIES, Candidate, Policy
from controller.errors import InvalidWorkerStatus, UnknownDispatchMethod
from controller.model_order import sort_models
from controller.stats import StatsPoint

Clock = Callable[[], float]


def check_queue_length(queue_length: int) -> None:
    """Raise InvalidWorkerStatus for a queue length no worker can have."""
    if queue_length < 0:
        raise InvalidWorkerStatus(f"queue_length must be >= 0, got {queue_length}")


@dataclass(frozen=True)
class WorkerStatus:
    """What a worker reports about itself (`/worker_get_status`)."""

    model_names: tuple[str, ...]
    speed: float
    queue_length: int
    multimodal: bool = False

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise InvalidWorkerStatus(f"speed must be > 0, got {self.speed}")
        check_queue_length(self.queue_length)


@dataclass
class _WorkerRecord:
    address: str
    status: WorkerStatus
    check_heart_beat: bool
    registered_at: float
    last_heart_beat: float
    dispatched_since_report: int = 0
    ended_since_report: int = 0
    in_flight: int = 0
    # Circuit breaker: failures in a row; out of dispatch until `open_until`, then one probe.
    failures: int = 0
    open_until: float | None = None
    probing: bool = False

    def breaker_state(self, now: float) -> str:
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half_open"

    @property
    def load(self) -> int:
        believed = (
            self.status.queue_length + self.dispatched_since_report - self.ended_since_report
        )
        return max(believed, self.in_flight, 0)


@dataclass(frozen=True)
class WorkerView:
    """A read-only snapshot of one worker, for the admin page and `GET /workers`."""

    address: str
    model_names: tuple[str, ...]
    speed: float
    queue_length: int
    in_flight: int
    dispatched_since_report: int
    load: int
    seconds_since_heartbeat: float
    check_heart_beat: bool
    multimodal: bool
    status: str  # healthy | late | expired
    breaker: str  # closed | open | half_open
    consecutive_failures: int


@dataclass(frozen=True)
class SharedWorkerState:
    """One worker as a shared store (Redis) holds it, for rebuilding a replica's snapshot."""

    address: str
    status: WorkerStatus
    check_heart_beat: bool
    heart_beat_age_s: float
    dispatched_since_report: int
    ended_since_report: int
    in_flight: int


@dataclass(frozen=True)
class ModelView:
    name: str
    multimodal: bool
    workers: int


@dataclass
class Registry:
    """All registered workers of one controller."""

    heart_beat_expiration_s: float = 30.0
    clock: Clock = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    breaker_failures: int = 3
    breaker_cooldown_s: float = 30.0
    # Requests dispatched per (worker, model) since start, for /metrics.
    dispatch_counts: Counter[tuple[str, str]] = field(default_factory=Counter, init=False)
    _workers: dict[str, _WorkerRecord] = field(default_factory=dict, init=False)
    _by_model: dict[str, list[str]] = field(default_factory=dict, init=False)
    _sorted_models: list[str] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    # -- membership -------------------------------------------------------------------------

    def register(self, address: str, status: WorkerStatus, check_heart_beat: bool) -> bool:
        """Add or update a worker; True when it was not known before."""
        now = self.clock()
        with self._lock:
            record = self._workers.get(address)
            is_new = record is None
            if record is None:
                record = _WorkerRecord(address, status, check_heart_beat, now, now)
                self._workers[address] = record
            else:
                # A fresh report replaces what we believed; streams we proxy stay counted.
                record.status = status
                record.check_heart_beat = check_heart_beat
                record.last_heart_beat = now
                record.dispatched_since_report = 0
                record.ended_since_report = 0
            self._reindex()
        return is_new

    def remove(self, address: str) -> bool:
        """Forget a worker; True when it was registered."""
        with self._lock:
            removed = self._workers.pop(address, None) is not None
            if removed:
                self._reindex()
        return removed

    def heartbeat(self, address: str, queue_length: int) -> bool:
        """Record a heartbeat; False tells the worker to register again."""
        check_queue_length(queue_length)
        now = self.clock()
        with self._lock:
            record = self._workers.get(address)
            if record is None:
                return False
            record.last_heart_beat = now
            record.status = WorkerStatus(
                record.status.model_names, record.status.speed, queue_length,
                record.status.multimodal,
            )
            record.dispatched_since_report = 0
            record.ended_since_report = 0
            return True

    def expire(self) -> list[str]:
        """Remove workers whose heartbeats stopped; return their addresses."""
        now = self.clock()
        with self._lock:
            dead = [a for a, r in self._workers.items() if self._is_expired(r, now)]
            for address in dead:
                del self._workers[address]
            if dead:
                self._reindex()
        return dead

    def _is_expired(self, record: _WorkerRecord, now: float) -> bool:
        return record.check_heart_beat and now - record.last_heart_beat > (
            self.heart_beat_expiration_s
        )

    def _reindex(self) -> None:
        by_model: dict[str, list[str]] = {}
        for address, record in self._workers.items():
            for name in record.status.model_names:
                by_model.setdefault(name, []).append(address)
        self._by_model = by_model
        self._sorted_models = sort_models(by_model)

    def load_shared_state(self, states: Collection[SharedWorkerState]) -> None:
        """Replace the snapshot with what a shared store holds; breaker state stays local."""
        now = self.clock()
        with self._lock:
            workers = {}
            for state in states:
                old = self._workers.get(state.address)
                record = _WorkerRecord(
                    state.address, state.status, state.check_heart_beat,
                    old.registered_at if old else now, now - state.heart_beat_age_s,
                    state.dispatched_since_report, state.ended_since_report, state.in_flight,
                )
                if old is not None:
                    record.failures = old.failures
                    record.open_until = old.open_until
                    record.probing = old.probing
                workers[state.address] = record
            membership_changed = workers.keys() != self._workers.keys() or any(
                workers[a].status.model_names != old.status.model_names
                for a, old in self._workers.items()
            )
            self._workers = workers
            if membership_changed:
                self._reindex()

    def heart_beat_ages(self) -> dict[str, tuple[WorkerStatus, bool, float]]:
        """(status, check_heart_beat, seconds since the last beat) per worker."""
        now = self.clock()
        with self._lock:
            return {
                a: (r.status, r.check_heart_beat, now - r.last_heart_beat)
                for a, r in self._workers.items()
            }

    # -- shared state (the in-memory registry applies it directly; see redis_registry) ------

    async def start(self) -> None:
        """Begin any background synchronisation."""

    async def close(self) -> None:
        """Stop background synchronisation."""

    async def register_shared(
        self, address: str, status: WorkerStatus, check_heart_beat: bool
    ) -> bool:
        return self.register(address, status, check_heart_beat)

    async def heartbeat_shared(self, address: str, queue_length: int) -> bool:
        return self.heartbeat(address, queue_length)

    async def remove_shared(self, address: str) -> bool:
        return self.remove(address)

    async def expire_shared(self) -> list[str]:
        return self.expire()

    async def publish_stats(self, point: StatsPoint) -> None:
        """Share one closed stats interval (nothing to share in memory)."""

    async def shared_stats(self, local_points: list[StatsPoint]) -> list[StatsPoint]:
        """The cluster's time series; in memory, this controller's own."""
        return local_points

    def backend_health(self) -> dict[str, object]:
        return {"registry": "memory", "degraded": False}

    # -- reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._workers)

    def addresses(self) -> list[str]:
        with self._lock:
            return list(self._workers)

    def check_heart_beat_of(self, address: str) -> bool | None:
        with self._lock:
            record = self._workers.get(address)
            return None if record is None else record.check_heart_beat

    def list_models(self) -> list[str]:
        """Every served model, in the picker order of model_order."""
        return list(self._sorted_models)

    def models(self) -> list[ModelView]:
        """Every served model with whether any worker of it takes images."""
        with self._lock:
            return [
                ModelView(
                    name,
                    any(self._workers[a].status.multimodal for a in self._by_model[name]),
                    len(self._by_model[name]),
                )
                for name in self._sorted_models
            ]

    def views(self) -> list[WorkerView]:
        """A snapshot of every worker with its health."""
        now = self.clock()
        late_after_s = self.heart_beat_expiration_s / 2
        with self._lock:
            views = []
            for record in self._workers.values():
                age_s = now - record.last_heart_beat
                if record.check_heart_beat and age_s > self.heart_beat_expiration_s:
                    health = "expired"
                elif record.check_heart_beat and age_s > late_after_s:
                    health = "late"
                else:
                    health = "healthy"
                views.append(
                    WorkerView(
                        address=record.address,
                        model_names=record.status.model_names,
                        speed=record.status.speed,
                        queue_length=record.status.queue_length,
                        in_flight=record.in_flight,
                        dispatched_since_report=record.dispatched_since_report,
                        load=record.load,
                        seconds_since_heartbeat=round(age_s, 3),
                        check_heart_beat=record.check_heart_beat,
                        multimodal=record.status.multimodal,
                        status=health,
                        breaker=record.breaker_state(now),
                        consecutive_failures=record.failures,
                    )
                )
        return views

    # -- dispatch ---------------------------------------------------------------------------

    def _candidates(self, model: str, exclude: Collection[str], now: float) -> list[Candidate]:
        result = []
        for address in self._by_model.get(model, ()):
            record = self._workers[address]
            if address in exclude or self._is_expired(record, now):
                continue
            if record.open_until is not None and (now < record.open_until or record.probing):
                continue  # cooling down, or its one probe request is still out
            result.append(Candidate(address, record.status.speed, record.load))
        return result

    def dispatch(
        self,
        model: str,
        method: str,
        *,
        exclude: Collection[str] = (),
        stream: bool = False,
    ) -> str | None:
        """Pick a worker for one request and count it; None when no live worker serves it.

        With `stream=True` the caller proxies the request and must call `stream_ended` once
        when it ends, whatever the reason.
        """
        policy = policy_named(method)
        now = self.clock()
        with self._lock:
            candidates = self._candidates(model, exclude, now)
            if not candidates:
                return None
            chosen = candidates[0] if len(candidates) == 1 else policy(candidates, self.rng)
            record = self._workers[chosen.address]
            record.dispatched_since_report += 1
            if stream:
                record.in_flight += 1
            if record.open_until is not None:
                record.probing = True  # half-open: this request is the probe
            self.dispatch_counts[chosen.address, model] += 1
            return chosen.address

    def record_failure(self, address: str) -> None:
        """A request to `address` failed; enough in a row open its breaker."""
        now = self.clock()
        with self._lock:
            record = self._workers.get(address)
            if record is None:
                return
            record.failures += 1
            record.probing = False
            if record.failures >= self.breaker_failures:
                record.open_until = now + self.breaker_cooldown_s

    def record_success(self, address: str) -> None:
        """A request to `address` succeeded: its breaker closes."""
        with self._lock:
            record = self._workers.get(address)
            if record is not None:
                record.failures = 0
                record.open_until = None
                record.probing = False

    def cooling_down(self, model: str) -> float | None:
        """Seconds until a worker of `model` leaves its cool-down, when all of them are in one."""
        now = self.clock()
        with self._lock:
            waits = [
                self._workers[a].open_until - now
                for a in self._by_model.get(model, ())
                if self._workers[a].open_until is not None
            ]
            if not waits or len(waits) < len(self._by_model.get(model, ())):
                return None
            return max(0.0, min(waits))

    def stream_ended(self, address: str) -> None:
        """A proxied stream to `address` ended (finished, failed or cancelled)."""
        with self._lock:
            record = self._workers.get(address)
            if record is not None and record.in_flight > 0:
                record.in_flight -= 1
                record.ended_since_report += 1

    def total_load(self) -> tuple[int, int]:
        """(requests in flight through this controller, believed queue over all workers)."""
        with self._lock:
            records = list(self._workers.values())
        return sum(r.in_flight for r in records), sum(r.load for r in records)


def policy_named(method: str) -> Policy:
    try:
        return POLICIES[method]
    except KeyError:
        raise UnknownDispatchMethod(
            f"unknown dispatch method {method!r}; known: {', '.join(POLICIES)}"
        ) from None

"""A registry shared by several controller replicas through Redis.

Each replica keeps the in-memory `Registry` as a snapshot for reads and dispatch (so dispatch
costs what it costs with one controller) and synchronises it with Redis every
`sync_interval_s`: its own dispatch and stream-end counts go up as deltas, its streams in flight
as absolute numbers under its replica id, and the whole cluster's state comes back. Membership
changes (register, heartbeat, remove, expiry) go to Redis at once, through Lua scripts that take
the time from Redis, so replicas on machines with skewed clocks agree on heartbeat ages.

When Redis is unreachable the replica serves from its last snapshot, accepts registrations and
heartbeats locally, keeps them in an outbox, suspends expiry (it cannot see heartbeats sent to
other replicas) and reports itself degraded; when Redis is back it replays the outbox, and if
Redis lost its data (a restart without persistence) it publishes its whole view again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from controller.cancellation import raise_if_cancelled
from controller.errors import InvalidWorkerStatus
from controller.registry import Registry, SharedWorkerState, WorkerStatus, check_queue_length
from controller.stats import StatsPoint

log = logging.getLogger("controller.redis")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS: workers checked queue beat dispatched ended; ARGV: address json check queue age_s
_REGISTER = _NOW + """
local new = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[4], ARGV[1], tostring(now - tonumber(ARGV[5])))
redis.call('HSET', KEYS[5], ARGV[1], 0)
redis.call('HSET', KEYS[6], ARGV[1], 0)
return new
"""

# KEYS: workers queue beat dispatched ended; ARGV: address queue
_HEARTBEAT = _NOW + """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], tostring(now))
redis.call('HSET', KEYS[4], ARGV[1], 0)
redis.call('HSET', KEYS[5], ARGV[1], 0)
return 1
"""

# KEYS: workers checked queue beat dispatched ended; ARGV: address
_REMOVE = """
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
for k = 2, #KEYS do redis.call('HDEL', KEYS[k], ARGV[1]) end
return removed
"""

# KEYS: workers checked queue beat dispatched ended; ARGV: expiry_s
_EXPIRE = _NOW + """
local beats = redis.call('HGETALL', KEYS[4])
local removed = {}
for i = 1, #beats, 2 do
  local address = beats[i]
  if redis.call('HGET', KEYS[2], address) == '1'
     and now - tonumber(beats[i + 1]) > tonumber(ARGV[1]) then
    for k = 1, #KEYS do redis.call('HDEL', KEYS[k], address) end
    table.insert(removed, address)
  end
end
return removed
"""

# KEYS: workers dispatched ended replicas inflight; ARGV: replica, then (address d e n)...
# Adds this replica's dispatch/end deltas, publishes its in-flight counts, marks it alive.
_SYNC_OUT = _NOW + """
redis.call('ZADD', KEYS[4], now, ARGV[1])
local prefix = ARGV[1] .. '|'
local own = redis.call('HKEYS', KEYS[5])
for _, field in ipairs(own) do
  if string.sub(field, 1, #prefix) == prefix then redis.call('HDEL', KEYS[5], field) end
end
for i = 2, #ARGV, 4 do
  local address = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], address) == 1 then
    if ARGV[i + 1] ~= '0' then redis.call('HINCRBY', KEYS[2], address, ARGV[i + 1]) end
    if ARGV[i + 2] ~= '0' then redis.call('HINCRBY', KEYS[3], address, ARGV[i + 2]) end
  end
  if ARGV[i + 3] ~= '0' then redis.call('HSET', KEYS[5], prefix .. address, ARGV[i + 3]) end
end
return now
"""


class RedisRegistry(Registry):
    """The in-memory registry, synchronised with every other replica through Redis."""

    def __init__(
        self,
        url: str,
        heart_beat_expiration_s: float = 30.0,
        *,
        key_prefix: str = "vision-chat:",
        sync_interval_s: float = 0.1,
        stats_window_s: float = 900.0,
        replica_ttl_s: float = 10.0,
        **registry_options: Any,
    ) -> None:
        super().__init__(heart_beat_expiration_s, **registry_options)
        self.url = url
        self.sync_interval_s = sync_interval_s
        self.stats_window_s = stats_window_s
        self.replica_ttl_s = replica_ttl_s
        self.replica_id = uuid.uuid4().hex[:12]
        p = key_prefix
        self._keys = [f"{p}workers", f"{p}checked", f"{p}queue", f"{p}beat",
                      f"{p}dispatched", f"{p}ended"]
        self._replicas_key = f"{p}replicas"
        self._inflight_key = f"{p}inflight"
        self._epoch_key = f"{p}epoch"
        self._stats_prefix = f"{p}stats:"
        self._redis = aioredis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True,
            health_check_interval=0,
        )
        self._scripts = {
            name: self._redis.register_script(source)
            for name, source in (("register", _REGISTER), ("heartbeat", _HEARTBEAT),
                                 ("remove", _REMOVE), ("expire", _EXPIRE),
                                 ("sync_out", _SYNC_OUT))
        }
        self._deltas: dict[str, list[int]] = {}
        self._own_in_flight: Counter[str] = Counter()
        self._published_in_flight: set[str] = set()
        # What was accepted while Redis was away: the latest operation per worker
        # ("register", "heartbeat" or "remove"); the worker's state is in the snapshot.
        self._outbox: dict[str, str] = {}
        self._epoch: str | None = None
        self._degraded = False
        self._last_error = ""
        self._last_sync = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._replicas_seen = 1
        self._parsed_records: dict[str, tuple[tuple[str, ...], float, bool]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._sync()
        except (RedisError, OSError) as exc:
            raise_if_cancelled()
            self._mark_degraded(exc)
        self._task = asyncio.create_task(self._sync_forever(), name="redis-sync")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            # redis-py may turn a cancellation into a ConnectionError, which the loop would
            # survive; the flag ends the loop whatever the cancel turns into.
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5)
        try:
            # Leave the cluster cleanly (our streams in flight end with us), but never let a
            # slow or half-broken Redis connection hold up the shutdown.
            async with asyncio.timeout(2.0):
                self._own_in_flight.clear()
                await self._sync_out()
                await self._redis.zrem(self._replicas_key, self.replica_id)
        except (RedisError, OSError, TimeoutError):
            raise_if_cancelled()
            log.warning("could not leave the shared registry cleanly; other replicas will "
                        "drop this one after %gs", self.replica_ttl_s)
        try:
            async with asyncio.timeout(2.0):
                await self._redis.aclose()
        except TimeoutError:
            pass

    async def _sync_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.sync_interval_s)
            try:
                await self._sync()
            except (RedisError, OSError) as exc:
                raise_if_cancelled()
                self._mark_degraded(exc)
            raise_if_cancelled()

    def _mark_degraded(self, exc: BaseException) -> None:
        if not self._degraded:
            log.warning("Redis at %s unreachable (%s): serving from the last known view",
                        self.url, exc)
        self._degraded = True
        self._last_error = str(exc) or type(exc).__name__

    # -- synchronisation ---------------------------------------------------------------------

    async def _sync(self) -> None:
        """Replay what waits, push our counts, pull the cluster's state into the snapshot."""
        if self._outbox:
            await self._replay_outbox()
        await self._sync_out()
        await self._pull()
        if self._degraded:
            log.warning("Redis at %s reachable again; caught up", self.url)
        self._degraded = False
        self._last_sync = time.monotonic()

    async def _sync_out(self) -> None:
        deltas, self._deltas = self._deltas, {}
        args: list[Any] = [self.replica_id]
        for address in set(deltas) | set(self._own_in_flight) | self._published_in_flight:
            dispatched, ended = deltas.get(address, (0, 0))
            args += [address, dispatched, ended, self._own_in_flight.get(address, 0)]
        try:
            await self._scripts["sync_out"](keys=[self._keys[0], self._keys[4], self._keys[5],
                                                  self._replicas_key, self._inflight_key],
                                            args=args)
        except BaseException:
            # Not sent: keep the deltas for the next attempt.
            for address, (dispatched, ended) in deltas.items():
                pending = self._deltas.setdefault(address, [0, 0])
                pending[0] += dispatched
                pending[1] += ended
            raise
        self._published_in_flight = {a for a, n in self._own_in_flight.items() if n}

    async def _pull(self) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in self._keys:
                pipe.hgetall(key)
            pipe.hgetall(self._inflight_key)
            pipe.zrange(self._replicas_key, 0, -1, withscores=True)
            pipe.time()
            pipe.get(self._epoch_key)
            results = await pipe.execute()
        workers, checked, queue, beat, dispatched, ended, inflight, replicas, now, epoch = results
        if (epoch is None or epoch != self._epoch) and await self._epoch_changed(epoch):
            return  # what was just read predates the view this replica republished
        server_now = now[0] + now[1] / 1e6
        live = {rid for rid, seen in replicas if server_now - seen <= self.replica_ttl_s}
        live.discard(self.replica_id)
        self._replicas_seen = len(live) + 1
        elsewhere: Counter[str] = Counter()
        for field, count in inflight.items():
            rid, _, address = field.partition("|")
            if rid in live:
                elsewhere[address] += int(count)
        states = []
        parsed = self._parsed_records
        for address, raw in workers.items():
            static = parsed.get(raw)
            if static is None:
                # Records change only at registration: parse each once, not every sync.
                try:
                    record = json.loads(raw)
                    static = (tuple(record["model_names"]), float(record["speed"]),
                              bool(record["multimodal"]))
                except (ValueError, KeyError, TypeError):
                    log.warning("ignoring a malformed worker record for %s in Redis", address)
                    continue
                parsed[raw] = static
            try:
                status = WorkerStatus(static[0], static[1], int(queue.get(address, 0)),
                                      static[2])
            except (ValueError, InvalidWorkerStatus):
                log.warning("ignoring a malformed worker record for %s in Redis", address)
                continue
            states.append(SharedWorkerState(
                address=address,
                status=status,
                check_heart_beat=checked.get(address) == "1",
                heart_beat_age_s=max(0.0, server_now - float(beat.get(address, server_now))),
                # Counts made here since the last push are not in Redis yet: keep them.
                dispatched_since_report=int(dispatched.get(address, 0))
                + self._deltas.get(address, (0, 0))[0],
                ended_since_report=int(ended.get(address, 0))
                + self._deltas.get(address, (0, 0))[1],
                in_flight=elsewhere[address] + self._own_in_flight[address],
            ))
        if len(parsed) > 2 * len(workers) + 64:
            self._parsed_records = {raw: parsed[raw] for raw in workers.values() if raw in parsed}
        self.load_shared_state(states)

    async def _epoch_changed(self, epoch: str | None) -> bool:
        """Adopt Redis's epoch; True when Redis lost the registry and we republished our view.

        The epoch key is read with every pull, so noticing a restart without persistence costs
        no extra round trip.
        """
        if epoch is None:
            await self._redis.set(self._epoch_key, uuid.uuid4().hex, nx=True)
            epoch = await self._redis.get(self._epoch_key)
        lost = self._epoch is not None
        self._epoch = epoch
        if lost:
            log.warning("Redis lost the registry (new epoch); publishing this replica's view")
            for address, (status, check, age_s) in self.heart_beat_ages().items():
                await self._publish_register(address, status, check, age_s)
        return lost

    async def _replay_outbox(self) -> None:
        operations, self._outbox = self._outbox, {}
        known = self.heart_beat_ages()
        pending = list(operations.items())
        try:
            while pending:
                address, operation = pending[0]
                if operation == "remove":
                    await self._scripts["remove"](keys=self._keys, args=[address])
                elif address in known:
                    # Registration or heartbeat accepted while Redis was away: publish the
                    # worker as this replica saw it last.
                    status, check, age_s = known[address]
                    await self._publish_register(address, status, check, age_s)
                pending.pop(0)
        finally:
            # Whatever was not replayed waits for the next attempt (newer operations win).
            self._outbox = {**dict(pending), **self._outbox}

    async def _publish_register(
        self, address: str, status: WorkerStatus, check: bool, age_s: float = 0.0
    ) -> int:
        static = json.dumps({"model_names": list(status.model_names), "speed": status.speed,
                             "multimodal": status.multimodal})
        return await self._scripts["register"](
            keys=self._keys, args=[address, static, "1" if check else "0",
                                   status.queue_length, age_s],
        )

    # -- shared mutations --------------------------------------------------------------------

    async def register_shared(
        self, address: str, status: WorkerStatus, check_heart_beat: bool
    ) -> bool:
        is_new = self.register(address, status, check_heart_beat)
        try:
            is_new = bool(await self._publish_register(address, status, check_heart_beat))
        except (RedisError, OSError) as exc:
            raise_if_cancelled()
            self._mark_degraded(exc)
            self._outbox[address] = "register"
        return is_new

    async def heartbeat_shared(self, address: str, queue_length: int) -> bool:
        check_queue_length(queue_length)  # before Redis, as the in-memory heartbeat does
        try:
            exists = bool(await self._scripts["heartbeat"](
                keys=[self._keys[0], self._keys[2], self._keys[3], self._keys[4],
                      self._keys[5]],
                args=[address, queue_length],
            ))
        except (RedisError, OSError) as exc:
            raise_if_cancelled()
            self._mark_degraded(exc)
            exists = self.heartbeat(address, queue_length)
            if exists:
                self._outbox.setdefault(address, "heartbeat")
            return exists
        if exists:
            self.heartbeat(address, queue_length)
        return exists

    async def remove_shared(self, address: str) -> bool:
        removed = self.remove(address)
        try:
            removed = bool(await self._scripts["remove"](keys=self._keys, args=[address]))
        except (RedisError, OSError) as exc:
            raise_if_cancelled()
            self._mark_degraded(exc)
            self._outbox[address] = "remove"
        return removed

    async def expire_shared(self) -> list[str]:
        if self._degraded:
            return []  # heartbeats may be reaching other replicas; we cannot tell
        try:
            removed = await self._scripts["expire"](
                keys=self._keys, args=[self.heart_beat_expiration_s]
            )
        except (RedisError, OSError) as exc:
            raise_if_cancelled()
            self._mark_degraded(exc)
            return []
        for address in removed:
            self.remove(address)
        return list(removed)

    # -- dispatch accounting: local at once, shared at the next sync --------------------------

    def dispatch(self, model: str, method: str, *, exclude=(), stream: bool = False):
        address = super().dispatch(model, method, exclude=exclude, stream=stream)
        if address is not None:
            self._deltas.setdefault(address, [0, 0])[0] += 1
            if stream:
                self._own_in_flight[address] += 1
        return address

    def stream_ended(self, address: str) -> None:
        super().stream_ended(address)
        if self._own_in_flight.get(address, 0) > 0:
            self._own_in_flight[address] -= 1
            self._deltas.setdefault(address, [0, 0])[1] += 1

    # -- stats and health --------------------------------------------------------------------

    async def publish_stats(self, point: StatsPoint) -> None:
        bucket = f"{self._stats_prefix}{int(point.t)}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(bucket, "requests", point.requests)
                pipe.hincrby(bucket, "errors", point.errors)
                pipe.hset(bucket, mapping={"t": point.t, "in_flight": point.in_flight,
                                           "queue_length": json.dumps(point.queue_length)})
                pipe.expire(bucket, int(self.stats_window_s) + 60)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise_if_cancelled()
            self._mark_degraded(exc)

    async def shared_stats(self, local_points: list[StatsPoint]) -> list[StatsPoint]:
        if self._degraded:
            return local_points
        try:
            keys = [key async for key in self._redis.scan_iter(f"{self._stats_prefix}*",
                                                               count=1000)]
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                rows = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise_if_cancelled()
            self._mark_degraded(exc)
            return local_points
        points = []
        for row in rows:
            try:
                points.append(StatsPoint(float(row["t"]), int(row.get("requests", 0)),
                                         int(row.get("errors", 0)), int(row["in_flight"]),
                                         json.loads(row["queue_length"])))
            except (KeyError, ValueError):
                continue
        points.sort(key=lambda p: p.t)
        return points

    def backend_health(self) -> dict[str, object]:
        age_s = time.monotonic() - self._last_sync if self._last_sync else None
        return {
            "registry": "redis",
            "degraded": self._degraded,
            "redis": "unreachable" if self._degraded else "ok",
            "redis_error": self._last_error if self._degraded else "",
            "snapshot_age_s": None if age_s is None else round(age_s, 3),
            "replica_id": self.replica_id,
            "replicas": self._replicas_seen,
        }

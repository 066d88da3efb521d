"""The controller's behaviour, free of HTTP framework code: api.py only translates."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import aiohttp

from controller.addresses import AddressPolicy, normalize_worker_address
from controller.auth import Role, TokenCheck
from controller.cancellation import raise_if_cancelled
from controller.errors import WorkerUnreachable
from controller.metrics import ControllerMetrics
from controller.model_order import sort_models
from controller.prompt_limits import PromptLimits, check_generation_params
from controller.proxy import ProxyTimeouts, StreamProxy
from controller.registry import Registry, WorkerStatus, policy_named
from controller.settings import ControllerSettings
from controller.stats import ActivityStats
from controller.worker_client import WorkerClient

log = logging.getLogger("controller")


class Controller:
    """Registry + dispatch + proxy of one controller; lives on one event loop."""

    def __init__(
        self,
        settings: ControllerSettings,
        session: aiohttp.ClientSession,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else build_registry(settings)
        self.tokens = TokenCheck(settings.worker_token, settings.admin_token)
        self.address_policy = AddressPolicy(settings.worker_allowlist)
        self.limits = PromptLimits(
            settings.max_messages, settings.max_prompt_chars, settings.max_images,
            settings.max_image_bytes, settings.max_image_pixels,
        )
        self.metrics = ControllerMetrics()
        self.dispatch_method = settings.dispatch_method
        self.workers = WorkerClient(session, settings.status_timeout_s)
        self.stats = ActivityStats(settings.stats_interval_s, settings.stats_window_s)
        self.proxy = StreamProxy(
            self.registry,
            session,
            ProxyTimeouts(
                settings.connect_timeout_s,
                settings.first_frame_timeout_s,
                settings.idle_timeout_s,
            ),
            settings.max_attempts,
            lambda: self.dispatch_method,
            self.stats,
            self.metrics,
        )

    # -- the original protocol --------------------------------------------------------------

    async def register_worker(
        self,
        worker_name: Any,
        check_heart_beat: bool,
        worker_status: WorkerStatus | None,
        multimodal: bool | None = None,
        *,
        authorization: str | None = None,
        client_host: str | None = None,
    ) -> str:
        """Register (or update) a worker, asking it for its status when none is given."""
        self.tokens.require(Role.WORKER, authorization)
        address = normalize_worker_address(worker_name)
        if not self.tokens.is_admin(authorization):
            # An admin registering by hand may sit anywhere; a worker must be on the list.
            self.address_policy.check_source(client_host)
        self.address_policy.check_target(address)
        status = worker_status or await self.workers.get_status(address)
        if multimodal is not None and multimodal != status.multimodal:
            status = WorkerStatus(status.model_names, status.speed, status.queue_length, multimodal)
        is_new = await self.registry.register_shared(address, status, check_heart_beat)
        log.info(
            "%s worker %s serving %s (speed %g, heartbeat checked: %s)",
            "registered" if is_new else "updated", address, ", ".join(status.model_names),
            status.speed, check_heart_beat,
        )
        return address

    async def receive_heart_beat(
        self, worker_name: Any, queue_length: int, authorization: str | None = None
    ) -> bool:
        self.tokens.require(Role.WORKER, authorization)
        address = normalize_worker_address(worker_name)
        return await self.registry.heartbeat_shared(address, queue_length)

    async def refresh_all_workers(self, authorization: str | None = None) -> list[str]:
        """Ask every worker for its status at once; drop the ones that fail. Returns dropped."""
        self.tokens.require(Role.ADMIN, authorization)
        results = await self.workers.get_statuses(self.registry.addresses())
        removed = []
        for address, result in results.items():
            if isinstance(result, WorkerStatus):
                check = self.registry.check_heart_beat_of(address)
                if check is not None:  # removed meanwhile: do not bring it back
                    await self.registry.register_shared(address, result, check)
            else:
                log.warning("removing worker %s: %s", address, result)
                await self.registry.remove_shared(address)
                removed.append(address)
        return removed

    def list_models(self) -> list[str]:
        return self.registry.list_models()

    def get_worker_address(self, model: str) -> str:
        return self.registry.dispatch(model, self.dispatch_method) or ""

    def check_prompt(self, params: dict[str, Any]) -> None:
        """Raise InvalidPrompt when a generation request breaks a configured limit."""
        check_generation_params(params, self.limits)

    def generate_stream(self, model: str, body: bytes) -> AsyncIterator[bytes]:
        return self.proxy.stream(model, body)

    async def summed_status(self) -> dict[str, Any]:
        """This controller seen as one worker: the live workers' statuses summed."""
        results = await self.workers.get_statuses(self.registry.addresses())
        statuses = [r for r in results.values() if isinstance(r, WorkerStatus)]
        names: dict[str, None] = {}
        for status in statuses:
            names.update(dict.fromkeys(status.model_names))
        return {
            "model_names": sort_models(names),
            "speed": sum(s.speed for s in statuses),
            "queue_length": sum(s.queue_length for s in statuses),
            "multimodal": any(s.multimodal for s in statuses),
        }

    # -- additions ----------------------------------------------------------------------------

    async def remove_worker(self, worker_name: Any, authorization: str | None = None) -> bool:
        # A worker leaving sends the worker token; an admin removing one, the admin token.
        self.tokens.require(Role.WORKER, authorization)
        if self.tokens.admin_token is not None and self.tokens.worker_token is None:
            self.tokens.require(Role.ADMIN, authorization)
        return await self.registry.remove_shared(normalize_worker_address(worker_name))

    def set_dispatch_method(self, method: str, authorization: str | None = None) -> str:
        self.tokens.require(Role.ADMIN, authorization)
        policy_named(method)  # raises UnknownDispatchMethod with the known names
        self.dispatch_method = method
        log.info("dispatch method set to %s", method)
        return method

    def workers_view(self) -> dict[str, Any]:
        return {
            "workers": [asdict(v) for v in self.registry.views()],
            "dispatch_method": self.dispatch_method,
            "heart_beat_expiration_s": self.registry.heart_beat_expiration_s,
        }

    def models_view(self) -> dict[str, Any]:
        return {"models": [asdict(m) for m in self.registry.models()]}

    def health(self) -> dict[str, Any]:
        backend = self.registry.backend_health()
        return {
            "status": "degraded" if backend["degraded"] else "ok",
            **backend,
            "workers": len(self.registry),
            "models": len(self.registry.list_models()),
            "dispatch_method": self.dispatch_method,
            "registration": "open" if self.tokens.registration_open else "token",
            "admin": "open" if self.tokens.admin_token is None else "token",
            # Clients (the chat page) can check uploads against the limits in force here.
            "limits": {**asdict(self.limits), "max_body_bytes": self.settings.max_body_bytes},
        }

    async def stats_view(self) -> dict[str, Any]:
        points = await self.registry.shared_stats(self.stats.points())
        return {
            "interval_s": self.stats.interval_s,
            "points": [asdict(p) for p in points],
            "totals": {"requests": self.stats.total_requests, "errors": self.stats.total_errors},
        }

    # -- background duties -------------------------------------------------------------------

    async def sweep_forever(self) -> None:
        """Remove expired workers every sweep interval."""
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            for address in await self.registry.expire_shared():
                log.warning("removed worker %s: no heartbeat for %gs", address,
                            self.registry.heart_beat_expiration_s)
            raise_if_cancelled()

    async def record_stats_forever(self) -> None:
        """Close one time-series interval per stats interval."""
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            views = self.registry.views()
            point = self.stats.close_interval(
                sum(v.in_flight for v in views), {v.address: v.load for v in views}
            )
            await self.registry.publish_stats(point)
            raise_if_cancelled()

    async def report_to_parent_forever(self, parent: str, own_address: str) -> None:
        """Be a worker of a parent controller: register, heartbeat, register again when asked."""
        registered = False
        backoff_s = 1.0
        while True:
            try:
                if not registered:
                    status = await self.summed_status()
                    await self._post_parent(parent, "/register_worker", {
                        "worker_name": own_address,
                        "check_heart_beat": True,
                        "worker_status": status,
                    })
                    registered = True
                    log.info("registered with parent controller %s as %s", parent, own_address)
                _, load = self.registry.total_load()
                answer = await self._post_parent(parent, "/receive_heart_beat", {
                    "worker_name": own_address, "queue_length": load,
                })
                if not answer.get("exist", False):
                    registered = False
                    continue
                backoff_s = 1.0
                await asyncio.sleep(self.settings.parent_heart_beat_interval_s)
            except (aiohttp.ClientError, TimeoutError, WorkerUnreachable, ValueError) as exc:
                registered = False
                log.warning("parent controller %s: %s; retrying in %gs", parent, exc, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self.settings.parent_heart_beat_interval_s)

    async def _post_parent(self, parent: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self.settings.status_timeout_s)
        async with self.workers.session.post(
            parent.rstrip("/") + path, json=body, timeout=timeout, allow_redirects=False
        ) as response:
            if response.status != 200:
                text = await response.text()
                raise ValueError(f"{path} answered HTTP {response.status}: {text[:300]}")
            return await response.json(content_type=None) or {}


def build_registry(settings: ControllerSettings) -> Registry:
    """In memory, or shared through Redis when a registry URL is set."""
    breaker = {"breaker_failures": settings.breaker_failures,
               "breaker_cooldown_s": settings.breaker_cooldown_s}
    if settings.registry_url:
        from controller.redis_registry import RedisRegistry  # only needed with Redis

        return RedisRegistry(
            settings.registry_url, settings.heart_beat_expiration_s,
            key_prefix=settings.registry_key_prefix,
            sync_interval_s=settings.registry_sync_interval_s,
            stats_window_s=settings.stats_window_s, **breaker,
        )
    return Registry(settings.heart_beat_expiration_s, **breaker)

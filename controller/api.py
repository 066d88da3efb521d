"""HTTP routes of the controller: the LLaVA/FastChat/InternVL wire protocol plus additions.

Every route only translates between HTTP and `Controller`; domain errors become JSON answers
with their status code in one handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from controller.errors import ControllerError, PayloadTooLarge
from controller.hot_paths import (
    DISPATCH_PATHS,
    STREAM_PATH,
    parse_stream_request,
    send_json,
    serve_dispatch,
    serve_stream,
)
from controller.openai_compat import (
    CompletionShaper,
    OpenAIRequestError,
    model_not_found,
    models_list,
    parse_chat_request,
)
from controller.registry import Registry, WorkerStatus
from controller.service import Controller
from controller.settings import ControllerSettings
from controller.worker_client import new_session

log = logging.getLogger("controller")


class WorkerStatusBody(BaseModel):
    """A worker's self-description, as `/worker_get_status` returns it."""

    model_config = ConfigDict(extra="ignore")
    model_names: list[str]
    speed: float = Field(1, gt=0, description="relative throughput; must be > 0")
    queue_length: int = Field(0, ge=0)
    multimodal: bool = Field(False, description="whether the model takes images")

    def to_status(self) -> WorkerStatus:
        return WorkerStatus(
            tuple(dict.fromkeys(self.model_names)), self.speed, self.queue_length, self.multimodal
        )


class RegisterWorkerBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    worker_name: str = Field(description="the worker's base URL, http(s)://host:port")
    check_heart_beat: bool = Field(True, description="expire the worker when heartbeats stop")
    worker_status: WorkerStatusBody | None = Field(
        None, description="absent: the controller asks the worker's /worker_get_status"
    )
    multimodal: bool | None = Field(None, description="FastChat's flag: the model takes images")


class HeartBeatBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    worker_name: str
    queue_length: int = Field(ge=0)


class WorkerNameBody(BaseModel):
    worker_name: str


class ModelBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str


class DispatchMethodBody(BaseModel):
    dispatch_method: str


class ControllerApp(FastAPI):
    """FastAPI app with three things in front of the framework, all cheap per request:
    the body size cap, request counting for /metrics, and the hot paths (streaming and
    dispatch) as bare ASGI handlers."""

    controller: Controller | None = None
    max_body_bytes: int = 0
    known_paths: frozenset[str] = frozenset()

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        controller = self.controller
        if scope["type"] != "http" or controller is None:
            await super().__call__(scope, receive, send)
            return
        path = scope["path"]
        label = path if path in self.known_paths else "other"
        requests = controller.metrics.requests
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            requests[label, 413] += 1
            await send_json(send, 413, {"detail": _too_large(declared, self.max_body_bytes)})
            return
        is_post = scope["method"] == "POST"
        is_stream = is_post and path == STREAM_PATH
        is_dispatch = is_post and path in DISPATCH_PATHS
        if declared is None:
            receive = _capped(receive, self.max_body_bytes,
                              for_framework=not (is_stream or is_dispatch))
        if is_stream:
            status = await serve_stream(receive, send, controller)
            requests[label, status] += 1
            return
        if is_dispatch:
            status, receive = await serve_dispatch(path, receive, send, controller)
            if status:
                if status > 0:
                    requests[label, status] += 1
                return

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                requests[label, message["status"]] += 1
            await send(message)

        await super().__call__(scope, receive, counting_send)


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(size: int | str, limit: int) -> str:
    return f"request body is {size} bytes; the limit is {limit} (CONTROLLER_MAX_BODY_BYTES)"


def _capped(receive: Any, limit: int, for_framework: bool) -> Any:
    """A receive that fails with 413 once a chunked body passes `limit` bytes."""
    seen = 0

    async def capped_receive() -> dict[str, Any]:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            detail = _too_large(f"more than {limit}", limit)
            # FastAPI turns any other exception raised while reading a body into a 400.
            raise HTTPException(413, detail) if for_framework else PayloadTooLarge(detail)
        return message

    return capped_receive


def create_app(settings: ControllerSettings, *, registry: Registry | None = None) -> FastAPI:
    """The controller's FastAPI app; `registry` lets tests inject one with a fake clock."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        session = new_session()
        controller = Controller(settings, session, registry)
        await controller.registry.start()
        app.state.controller = controller
        app.controller = controller
        if controller.tokens.registration_open:
            log.warning(
                "worker registration is open: anyone who can reach this controller can "
                "register a worker (set CONTROLLER_WORKER_TOKEN to require a token)"
            )
        tasks = [
            asyncio.create_task(controller.sweep_forever(), name="sweep"),
            asyncio.create_task(controller.record_stats_forever(), name="stats"),
        ]
        if settings.parent_controller:
            own = settings.advertise_address or settings.local_url
            tasks.append(asyncio.create_task(
                controller.report_to_parent_forever(settings.parent_controller, own),
                name="parent",
            ))
        try:
            yield
        finally:
            app.controller = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await controller.registry.close()
            await session.close()

    app = ControllerApp(
        title="Vision chat controller",
        description="Registers model workers, lists their models, dispatches and proxies "
        "streamed answers. Wire-compatible with the LLaVA/FastChat/InternVL controllers.",
        version="1.0",
        lifespan=lifespan,
        # The original controllers parsed any body as JSON; clients that send no
        # Content-Type (requests' data=json.dumps(...)) must keep working.
        strict_content_type=False,
    )

    def ctl(request: Request) -> Controller:
        return request.app.state.controller

    @app.exception_handler(ControllerError)
    async def controller_error(_: Request, exc: ControllerError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)

    @app.exception_handler(OpenAIRequestError)
    async def openai_error(_: Request, exc: OpenAIRequestError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
            message = error.get("msg")
            if error.get("type") == "model_attributes_type" and where == "body":
                message = "must be a JSON object (send it with Content-Type: application/json)"
            elif error.get("type") == "json_invalid":
                where = "body"
                message = f"is not valid JSON ({error.get('ctx', {}).get('error')})"
            problems.append(f"{where}: {message}")
        return JSONResponse(
            {"detail": "; ".join(problems), "errors": json.loads(json.dumps(
                exc.errors(), default=str))},
            status_code=422,
        )

    # -- the original protocol --------------------------------------------------------------

    @app.post("/register_worker", tags=["protocol"])
    async def register_worker(body: RegisterWorkerBody, request: Request) -> dict[str, Any]:
        """Register a worker (or update it); asks the worker for its status if none is given."""
        status = body.worker_status.to_status() if body.worker_status else None
        address = await ctl(request).register_worker(
            body.worker_name, body.check_heart_beat, status, body.multimodal,
            authorization=request.headers.get("authorization"),
            client_host=request.client.host if request.client else None,
        )
        return {"registered": True, "worker_name": address}

    @app.post("/receive_heart_beat", tags=["protocol"])
    async def receive_heart_beat(body: HeartBeatBody, request: Request) -> dict[str, bool]:
        """Record a heartbeat; `exist: false` asks the worker to register again."""
        return {"exist": await ctl(request).receive_heart_beat(
            body.worker_name, body.queue_length, request.headers.get("authorization")
        )}

    @app.post("/refresh_all_workers", tags=["protocol"])
    async def refresh_all_workers(request: Request) -> dict[str, Any]:
        """Ask every worker for its status concurrently; drop the ones that fail."""
        removed = await ctl(request).refresh_all_workers(request.headers.get("authorization"))
        return {"workers": len(ctl(request).registry), "removed": removed}

    @app.post("/list_models", tags=["protocol"])
    async def list_models(request: Request) -> dict[str, list[str]]:
        """Served models: Pro first, InternVL by size, then the rest alphabetically."""
        return {"models": ctl(request).list_models()}

    @app.post("/get_worker_address", tags=["protocol"])
    async def get_worker_address(body: ModelBody, request: Request) -> dict[str, str]:
        """A worker for the model by the dispatch method; `""` when none serves it."""
        return {"address": ctl(request).get_worker_address(body.model)}

    @app.post("/worker_generate_stream", tags=["protocol"])
    async def worker_generate_stream(request: Request) -> StreamingResponse:
        """Stream a generation from a worker of `model`: `\\0`-separated JSON frames."""
        # Served by ControllerApp's bare ASGI handler; this route documents it and is the
        # same behaviour should the fast path ever be bypassed.
        body = await request.body()
        try:
            params, model = parse_stream_request(body)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        ctl(request).check_prompt(params)
        return StreamingResponse(ctl(request).generate_stream(model, body))

    @app.post("/worker_get_status", tags=["protocol"])
    async def worker_get_status(request: Request) -> dict[str, Any]:
        """This controller as one worker: live workers' statuses summed (for a parent)."""
        return await ctl(request).summed_status()

    # -- additions ----------------------------------------------------------------------------

    @app.get("/health", tags=["operations"])
    async def health(request: Request) -> dict[str, Any]:
        """Liveness, with counts."""
        return ctl(request).health()

    @app.get("/workers", tags=["operations"])
    async def workers(request: Request) -> dict[str, Any]:
        """Every worker's full state: load, in-flight streams, heartbeat age, health."""
        return ctl(request).workers_view()

    @app.get("/models", tags=["operations"])
    async def models(request: Request) -> dict[str, Any]:
        """Served models in list order, each with whether it takes images."""
        return ctl(request).models_view()

    @app.post("/remove_worker", tags=["operations"])
    async def remove_worker(body: WorkerNameBody, request: Request) -> dict[str, bool]:
        """Forget a worker now."""
        return {"removed": await ctl(request).remove_worker(
            body.worker_name, request.headers.get("authorization")
        )}

    @app.post("/set_dispatch_method", tags=["operations"])
    async def set_dispatch_method(body: DispatchMethodBody, request: Request) -> dict[str, str]:
        """Switch the dispatch policy at run time."""
        return {"dispatch_method": ctl(request).set_dispatch_method(
            body.dispatch_method, request.headers.get("authorization")
        )}

    @app.get("/stats", tags=["operations"])
    async def stats(request: Request) -> dict[str, Any]:
        """Requests, errors, in-flight and queue lengths per interval, last 15 minutes."""
        return await ctl(request).stats_view()

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics(request: Request) -> PlainTextResponse:
        """Prometheus metrics: requests, errors, dispatches, in-flight, latencies, breakers."""
        controller = ctl(request)
        return PlainTextResponse(
            controller.metrics.exposition(controller.registry),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    # -- OpenAI-compatible API -----------------------------------------------------------------

    @app.get("/v1/models", tags=["openai"])
    async def openai_models(request: Request) -> dict[str, Any]:
        """The live models, in list order, as OpenAI's model list."""
        return models_list(ctl(request).list_models())

    @app.post(
        "/v1/chat/completions",
        tags=["openai"],
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "required": ["model", "messages"]}}}}},
    )
    async def chat_completions(request: Request) -> Any:
        """OpenAI chat completions (text and base64 `image_url` parts), streamed or not,
        through the same dispatch and failover as `/worker_generate_stream`."""
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise OpenAIRequestError(f"the body is not valid JSON: {exc}") from None
        chat = parse_chat_request(body)
        controller = ctl(request)
        if chat.model not in controller.list_models():
            raise model_not_found(chat.model)
        try:
            controller.check_prompt(chat.worker_params)
        except ControllerError as exc:
            raise OpenAIRequestError(str(exc), "messages", exc.status_code) from None
        frames = controller.generate_stream(chat.model, json.dumps(chat.worker_params).encode())
        shaper = CompletionShaper(chat.model)
        if chat.stream:
            return StreamingResponse(shaper.sse(frames), media_type="text/event-stream")
        return await shaper.complete(frames)

    app.max_body_bytes = settings.max_body_bytes
    app.known_paths = frozenset(route.path for route in app.routes)
    return app

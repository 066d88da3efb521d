"""The worker's HTTP protocol: `/worker_get_status` and `/worker_generate_stream`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import ClientDisconnect

from protocol.frames import BAD_REQUEST, WORKER_FAILED, encode_frame, error_frame
from worker.backends.base import AsyncBackend, Backend, GenerationFailed, PromptTooLong, is_async
from worker.concurrency import SlotLimiter
from worker.limits import InputLimits, check_input_limits
from worker.params import GenerationRequest, InvalidParams, parse_generation_params
from worker.registration import Registrar
from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

FRAME_MEDIA_TYPE = "application/octet-stream"
_END = object()


class WorkerService:
    """Admission, generation in threads and frame encoding, independent of the HTTP layer."""

    def __init__(self, settings: WorkerSettings, backend: Backend | AsyncBackend) -> None:
        self.settings = settings
        self.backend = backend
        self.limits = InputLimits.from_settings(settings)
        own_limit = backend.max_concurrency
        limit = settings.limit_model_concurrency
        # Admitting more than the backend can run would only move the queue into its lock.
        self.limiter = SlotLimiter(min(limit, own_limit) if own_limit else limit)
        self.executor = ThreadPoolExecutor(
            max_workers=self.limiter.limit, thread_name_prefix="worker-generate"
        )
        # Cancel flags of running generations, so shutdown can stop them before the model goes.
        self._cancels: set[threading.Event] = set()

    def status(self) -> dict[str, Any]:
        """The protocol status plus additive fields (multimodal, running, waiting, health)."""
        health = getattr(self.backend, "health", None)
        return {
            **(health() if health else {}),
            "model_names": [self.backend.model_name],
            "speed": self.settings.speed,
            "queue_length": self.limiter.queue_length,
            "multimodal": self.backend.multimodal,
            "running": self.limiter.running,
            "waiting": self.limiter.waiting,
            "limit_model_concurrency": self.limiter.limit,
            "context_size": self.backend.context_size,
        }

    def check(self, payload: Any) -> GenerationRequest:
        """Validate params against this model; raise InvalidParams naming the problem."""
        # Limits first, on the raw JSON: nothing is decoded before its size is known to be fine.
        check_input_limits(payload, self.limits)
        request = parse_generation_params(payload, context_size=self.backend.context_size)
        if request.image_count and not self.backend.multimodal:
            raise InvalidParams(
                f"model {self.backend.model_name} does not take images, but the prompt has "
                f"{request.image_count}; send text only or choose a vision model"
            )
        return request

    async def stream(self, request: GenerationRequest) -> AsyncIterator[bytes]:
        """Frames for one request; the slot is held until the generation has ended."""
        if is_async(self.backend):
            async for frame in self._stream_on_loop(request):
                yield frame
            return
        await self.limiter.acquire()
        loop = asyncio.get_running_loop()
        frames: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()
        job: Future[None] | None = None
        self._cancels.add(cancel)
        try:
            job = self.executor.submit(self._produce, request, cancel, loop, frames)
            while (frame := await frames.get()) is not _END:
                yield frame
            # Release only after the thread is done, so a finished stream has freed its slot
            # by the time the client sees the end of the response.
            await asyncio.wrap_future(job)
        finally:
            cancel.set()
            self._cancels.discard(cancel)
            if job is None or job.done():
                self.limiter.release()
            else:
                # Client gone mid-generation: the thread stops at its next token, then frees it.
                job.add_done_callback(lambda _: _call_soon(loop, self.limiter.release))

    async def _stream_on_loop(self, request: GenerationRequest) -> AsyncIterator[bytes]:
        """Frames from a backend that generates on the event loop (no thread needed)."""
        backend: Any = self.backend
        await self.limiter.acquire()
        interval = self.settings.stream_interval
        update = None
        try:
            # aclosing: a client that goes away closes the backend's iterator at once, which
            # closes the upstream request instead of leaving it to the garbage collector.
            async with contextlib.aclosing(backend.agenerate(request)) as updates:
                count = 0
                async for update in updates:
                    count += 1
                    if count % interval == 0:
                        yield encode_frame(update.text)
            yield _final_frame(update)
        except (PromptTooLong, InvalidParams) as exc:
            yield error_frame(f"bad request to {backend.model_name}: {exc}", BAD_REQUEST)
        except GenerationFailed as exc:
            yield error_frame(str(exc), exc.error_code)
        except Exception as exc:
            logger.exception("generation failed in %s", backend.model_name)
            yield error_frame(f"worker failed while generating with {backend.model_name}: "
                              f"{type(exc).__name__}: {exc}", WORKER_FAILED)
        finally:
            self.limiter.release()

    def _produce(
        self,
        request: GenerationRequest,
        cancel: threading.Event,
        loop: asyncio.AbstractEventLoop,
        frames: asyncio.Queue[Any],
    ) -> None:
        """Run the backend in this thread and hand each frame to the event loop."""

        def put(item: Any) -> bool:
            if not _call_soon(loop, frames.put_nowait, item):
                cancel.set()
                return False
            return True

        interval = self.settings.stream_interval
        update = None
        try:
            for count, update in enumerate(self.backend.generate(request, cancel), start=1):
                if count % interval == 0 and not put(encode_frame(update.text)):
                    return
            if not cancel.is_set():
                put(_final_frame(update))
        except PromptTooLong as exc:
            put(error_frame(str(exc), BAD_REQUEST))
        except GenerationFailed as exc:
            put(error_frame(str(exc), exc.error_code))
        except Exception as exc:
            logger.exception("generation failed in %s", self.backend.model_name)
            put(error_frame(f"worker failed while generating with {self.backend.model_name}: "
                            f"{type(exc).__name__}: {exc}", WORKER_FAILED))
        finally:
            put(_END)

    def close(self) -> None:
        """Stop running generations and wait for their threads, so the model can be freed."""
        for cancel in list(self._cancels):
            cancel.set()
        self.executor.shutdown(wait=True, cancel_futures=True)


def _final_frame(update: Any) -> bytes:
    """The whole answer once more, with FastChat's additive usage and finish_reason fields."""
    if update is None:
        return encode_frame("", usage={"completion_tokens": 0}, finish_reason="stop")
    return encode_frame(
        update.text,
        usage={"completion_tokens": update.completion_tokens},
        finish_reason=update.finish_reason or "stop",
    )


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> bool:
    """Schedule on the loop from any thread; False when the loop is already closed."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        return False
    return True


def _one_frame(frame: bytes) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield frame

    return StreamingResponse(body(), media_type=FRAME_MEDIA_TYPE)


async def _read_capped(http_request: Request, limit_bytes: int) -> bytes | None:
    """The request body, or None once it passes `limit_bytes` (checked while reading)."""
    declared = http_request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in http_request.stream():
        size += len(chunk)
        # A chunked body has no declared length: stop reading, do not buffer 1 GB first.
        if size > limit_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(http_request: Request, limit_bytes: int) -> JSONResponse:
    declared = http_request.headers.get("content-length")
    size = f"{declared} bytes" if declared else f"more than {limit_bytes} bytes"
    return JSONResponse(
        {"detail": f"request body is {size}; the limit is {limit_bytes} bytes "
                   "(WORKER_MAX_BODY_BYTES on the worker)"},
        status_code=413,
    )


def create_app(settings: WorkerSettings, backend: Backend | AsyncBackend) -> FastAPI:
    """The worker's FastAPI app; registers with the controller while it runs (unless told not)."""
    service = WorkerService(settings, backend)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        registration: asyncio.Task[None] | None = None
        if not settings.no_register:
            registrar = Registrar(
                controller_address=settings.controller_address,
                worker_address=settings.worker_address or "",
                status=service.status,
                heart_beat_interval_s=settings.heart_beat_interval_s,
                retry_max_s=settings.register_retry_max_s,
                timeout_s=settings.controller_timeout_s,
                token=settings.controller_token,
            )
            app.state.registrar = registrar
            registration = asyncio.create_task(registrar.run(), name="worker-registration")
        start = getattr(backend, "start", None)
        if start is not None:
            await start()
        try:
            yield
        finally:
            if registration is not None:
                registration.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await registration
            service.close()
            aclose = getattr(backend, "aclose", None)
            if aclose is not None:
                await aclose()

    app = FastAPI(title=f"Model worker: {backend.model_name}", lifespan=lifespan)
    app.state.service = service

    @app.api_route("/worker_get_status", methods=["GET", "POST"])
    async def worker_get_status() -> dict[str, Any]:
        return service.status()

    @app.post("/worker_generate_stream")
    async def worker_generate_stream(http_request: Request) -> StreamingResponse:
        # Read the body ourselves: a malformed one must become an error frame, not a 422/500.
        try:
            raw = await _read_capped(http_request, settings.max_body_bytes)
        except ClientDisconnect:
            return _one_frame(b"")
        if raw is None:
            return _too_large(http_request, settings.max_body_bytes)
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _one_frame(error_frame(f"request body is not valid JSON: {exc}", BAD_REQUEST))
        try:
            request = service.check(payload)
        except InvalidParams as exc:
            return _one_frame(error_frame(f"bad request to {backend.model_name}: {exc}",
                                          BAD_REQUEST))
        return StreamingResponse(service.stream(request), media_type=FRAME_MEDIA_TYPE)

    return app

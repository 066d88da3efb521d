"""A model served by an OpenAI-compatible server (LMDeploy, vLLM, SGLang, Ollama, llama.cpp).

The worker maps InternVL chat params to `POST {api_base}/chat/completions` with `stream: true`
and turns the server-sent deltas into cumulative-text frames. It waits on the network, not the
CPU, so it generates on the event loop (`agenerate`) and admits as many generations at once as
`--limit-model-concurrency` allows: the upstream batches them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import requests

from protocol.frames import BAD_REQUEST, WORKER_FAILED
from worker.backends.base import BackendError, GenerationFailed, TextUpdate
from worker.images import KNOWN_FORMATS, image_format
from worker.params import GenerationRequest, InvalidParams
from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

# Upstream statuses that blame the request rather than the upstream or this worker's setup
# (a 401 means our key is wrong, a 404 our model name: those are the worker's failures).
_CLIENT_ERROR_STATUSES = frozenset({400, 413, 422})
_ERROR_TEXT_CHARS = 500


def image_data_url(data: bytes, where: str = "image") -> str:
    """A `data:` URL with the MIME type read from the image's magic bytes."""
    kind = image_format(data)
    if kind is None:
        raise InvalidParams(
            f"{where} is not a {KNOWN_FORMATS} image (its first bytes are {data[:8]!r})"
        )
    return f"data:{kind[1]};base64,{base64.b64encode(data).decode()}"


def chat_completion_body(request: GenerationRequest, model: str) -> dict[str, Any]:
    """The chat-completions request for InternVL params: history, images as data URLs."""
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        if not message.images:
            messages.append({"role": message.role, "content": message.content})
            continue
        # Images before the text, as InternVL's own prompt puts `<image>` before the question.
        parts: list[dict[str, Any]] = [
            {"type": "image_url",
             "image_url": {"url": image_data_url(data, f"prompt[{index}].image[{number}]")}}
            for number, data in enumerate(message.images)
        ]
        if message.content:
            parts.append({"type": "text", "text": message.content})
        messages.append({"role": message.role, "content": parts})
    return {
        "model": model,
        "messages": messages,
        "stream": True,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_new_tokens,
        # Not in OpenAI's schema; vLLM, LMDeploy and SGLang read it as an extra field, and
        # servers that do not know it ignore it.
        "repetition_penalty": request.repetition_penalty,
    }


def upstream_error_message(status: int, raw: bytes) -> str:
    """The upstream's own error message from the shapes servers use, else its raw text."""
    text = raw.decode(errors="replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]  # OpenAI, llama.cpp
        if isinstance(error, str):
            return error
        for key in ("message", "detail"):  # vLLM and LMDeploy; FastAPI
            if isinstance(body.get(key), str):
                return body[key]
    return text[:_ERROR_TEXT_CHARS] or f"HTTP {status} with an empty body"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def discover_model(api_base: str, api_key: str | None, timeout_s: float) -> str:
    """The first model the upstream lists at `/models` (blocking; used once at startup)."""
    url = f"{api_base}/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = requests.get(url, headers=headers, timeout=timeout_s)
    except requests.RequestException as exc:
        raise BackendError(
            f"cannot list the models of the upstream {url} ({exc}); start it first, or give "
            "--model-name to start the worker before the upstream is up"
        ) from exc
    if response.status_code != 200:
        raise BackendError(
            f"upstream {url} answered HTTP {response.status_code}: "
            f"{upstream_error_message(response.status_code, response.content)}"
        )
    try:
        ids = [entry["id"] for entry in response.json()["data"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"upstream {url} did not answer an OpenAI model list: {exc}") from exc
    if not ids:
        raise BackendError(f"upstream {url} serves no model")
    if len(ids) > 1:
        logger.warning(
            "upstream %s serves %d models (%s); this worker serves the first, %s: start one "
            "worker per model with --model-name to serve the others", url, len(ids),
            ", ".join(ids), ids[0],
        )
    else:
        logger.info("no --model-name given; serving %s, the model upstream %s lists", ids[0], url)
    return ids[0]


class OpenAIBackend:
    """One model of an OpenAI-compatible server; streams its deltas and watches its health."""

    def __init__(
        self,
        api_base: str,
        *,
        model_name: str | None = None,
        api_key: str | None = None,
        multimodal: bool = False,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 300.0,
        health_interval_s: float = 10.0,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self._api_key = api_key
        self._model_name = model_name or discover_model(self.api_base, api_key, connect_timeout_s)
        self._multimodal = multimodal
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._health_interval_s = health_interval_s
        self._healthy = True
        self._unhealthy_reason: str | None = None
        self._checked_at: float | None = None
        self._session: aiohttp.ClientSession | None = None
        self._probe: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> OpenAIBackend:
        """Build from the `openai` options; discovers the model name when none is given."""
        return cls(
            settings.api_base or "",
            model_name=settings.model_name,
            api_key=settings.api_key,
            multimodal=settings.multimodal,
            connect_timeout_s=settings.upstream_connect_timeout_s,
            read_timeout_s=settings.upstream_read_timeout_s,
            health_interval_s=settings.health_interval_s,
        )

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def multimodal(self) -> bool:
        return self._multimodal

    @property
    def context_size(self) -> int:
        return 0  # the API does not say; the upstream caps max_tokens itself

    @property
    def max_concurrency(self) -> int | None:
        return None

    def health(self) -> dict[str, Any]:
        """Status fields: upstream URL, healthy, and why not."""
        fields: dict[str, Any] = {"upstream": self.api_base, "healthy": self._healthy}
        if not self._healthy:
            fields["unhealthy_reason"] = self._unhealthy_reason
        return fields

    def _mark(self, healthy: bool, reason: str | None = None) -> None:
        if healthy != self._healthy:
            if healthy:
                logger.info("upstream %s answers again", self.api_base)
            else:
                logger.warning("upstream %s is unhealthy: %s", self.api_base, reason)
        self._healthy = healthy
        self._unhealthy_reason = None if healthy else reason
        self._checked_at = time.monotonic()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No total timeout: an answer may stream for minutes; silence is what is bounded.
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self._connect_timeout_s, sock_read=self._read_timeout_s
            )
            self._session = aiohttp.ClientSession(timeout=timeout, headers=self._headers())
        return self._session

    async def start(self) -> None:
        """Open the HTTP session and start probing the upstream's health."""
        self._session_now()
        self._probe = asyncio.create_task(self._probe_forever(), name="upstream-health")

    async def aclose(self) -> None:
        """Stop probing and close the session."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if self._session is not None:
            await self._session.close()

    def close(self) -> None:
        """Nothing to free outside the event loop."""

    async def _probe_forever(self) -> None:
        while True:
            await self.check_health()
            await asyncio.sleep(self._health_interval_s)

    async def check_health(self) -> bool:
        """Ask `/models` once; healthy when it answers and still lists this worker's model."""
        url = f"{self.api_base}/models"
        timeout = aiohttp.ClientTimeout(total=self._connect_timeout_s)
        try:
            async with self._session_now().get(url, timeout=timeout) as response:
                raw = await response.read()
                if response.status != 200:
                    self._mark(False, f"upstream {url} answered HTTP {response.status}: "
                                      f"{upstream_error_message(response.status, raw)}")
                    return False
                ids = [entry.get("id") for entry in json.loads(raw).get("data", [])]
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError) as exc:
            self._mark(False, f"upstream {url} does not answer: {_describe(exc)}")
            return False
        if self._model_name not in ids:
            self._mark(False, f"upstream {url} no longer lists model {self._model_name} "
                              f"(it lists: {', '.join(map(str, ids)) or 'nothing'})")
            return False
        self._mark(True)
        return True

    async def agenerate(self, request: GenerationRequest) -> AsyncIterator[TextUpdate]:
        """Stream one chat completion; closing this iterator closes the upstream request."""
        body = chat_completion_body(request, self._model_name)
        url = f"{self.api_base}/chat/completions"
        try:
            response = await self._session_now().post(url, json=body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = f"upstream {self.api_base} does not answer: {_describe(exc)}"
            self._mark(False, reason)
            raise GenerationFailed(f"{reason} (model {self._model_name})", WORKER_FAILED) \
                from exc
        try:
            if response.status != 200:
                message = upstream_error_message(response.status, await response.read())
                code = BAD_REQUEST if response.status in _CLIENT_ERROR_STATUSES else WORKER_FAILED
                raise GenerationFailed(
                    f"upstream {self.api_base} refused the request for {self._model_name} "
                    f"(HTTP {response.status}): {message}", code,
                )
            self._mark(True)
            async for update in self._updates(response):
                yield update
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GenerationFailed(
                f"upstream {self.api_base} broke off the answer of {self._model_name}: "
                f"{_describe(exc)}", WORKER_FAILED,
            ) from exc
        finally:
            # close(), not release(): an unfinished answer must stop generating upstream.
            response.close()

    async def _updates(self, response: aiohttp.ClientResponse) -> AsyncIterator[TextUpdate]:
        text = ""
        tokens = 0
        finish: str | None = None
        async for data in _sse_data(response.content):
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError:
                raise GenerationFailed(
                    f"upstream {self.api_base} sent a stream event that is not JSON: "
                    f"{data[:200]!r}", WORKER_FAILED,
                ) from None
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk:
                # vLLM reports errors found mid-stream as an event, with HTTP 200 already sent.
                message = upstream_error_message(200, json.dumps(chunk).encode())
                raise GenerationFailed(
                    f"upstream {self.api_base} failed while answering with {self._model_name}: "
                    f"{message}", WORKER_FAILED,
                )
            for choice in chunk.get("choices") or []:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                piece = (choice.get("delta") or {}).get("content") or ""
                finish = choice.get("finish_reason") or finish
                if piece:
                    text += piece
                    # One delta is one token on vLLM, LMDeploy and llama.cpp.
                    tokens += 1
                if piece or finish:
                    yield TextUpdate(text=text, completion_tokens=tokens, finish_reason=finish)
            usage = chunk.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                # The server's own count, when it sends one, beats counting deltas.
                tokens = usage["completion_tokens"]
                yield TextUpdate(text=text, completion_tokens=tokens, finish_reason=finish)
        if finish is None:
            # llama.cpp's server, for one, reports errors found after the headers (a prompt
            # longer than its context) by ending the stream: a cut answer is not a whole one.
            raise GenerationFailed(
                f"upstream {self.api_base} ended the answer of {self._model_name} without "
                f"finishing it (no finish_reason, no [DONE]) after {tokens} tokens; the "
                "upstream's log says why", WORKER_FAILED,
            )


async def _sse_data(stream: aiohttp.StreamReader) -> AsyncIterator[str]:
    """The `data` of each server-sent event (multi-line data joined with newlines)."""
    lines: list[str] = []
    async for raw in stream:
        line = raw.decode(errors="replace").rstrip("\r\n")
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
        # Comments (":"), event names and ids carry nothing a chat answer needs.
    if lines:
        yield "\n".join(lines)

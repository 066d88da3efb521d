"""A small synchronous HTTP client for the controller, as any other client would use it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from protocol.frames import WORKER_FAILED, iter_frames


class ControllerError(RuntimeError):
    """The controller could not be reached or refused a request; the message says which."""


@dataclass(frozen=True)
class ModelInfo:
    """One model as the chat page needs it."""

    name: str
    multimodal: bool = False
    workers: int = 0


_local = threading.local()


def _detail(resp: requests.Response) -> str:
    """The controller's `detail` message of a refusal, else the start of the body."""
    detail = resp.text[:300]
    with contextlib.suppress(ValueError, AttributeError):
        detail = str(resp.json().get("detail", detail))
    return detail


def _session() -> requests.Session:
    # requests.Session is not documented as thread-safe; Streamlit runs each session's script
    # in its own thread, so one pooled session per thread keeps connections reused and safe.
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


class ControllerClient:
    """Calls the controller endpoints of docs/api.md."""

    def __init__(self, base_url: str, timeout_s: float = 5.0, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}{path}"
        try:
            resp = _session().request(
                method, url, json=body, headers=self._headers, timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            raise ControllerError(f"cannot reach the controller at {self.base_url}: {exc}") from exc
        if resp.status_code >= 400:
            raise ControllerError(
                f"{method} {path} failed with HTTP {resp.status_code}: {_detail(resp)}"
            )
        try:
            return resp.json()
        except ValueError as exc:
            raise ControllerError(f"{method} {path} answered no JSON") from exc

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def list_models(self) -> list[str]:
        """Model names in the controller's order (the picker's order)."""
        return list(self._call("POST", "/list_models")["models"])

    def models(self) -> list[ModelInfo]:
        """Models with their flags, in the `/list_models` order."""
        order = self.list_models()
        try:
            infos = {
                m["name"]: ModelInfo(m["name"], bool(m.get("multimodal")), int(m.get("workers", 0)))
                for m in self._call("GET", "/models")["models"]
            }
        except ControllerError:
            # An older controller without /models: still chat, just without images.
            infos = {}
        return [infos.get(name, ModelInfo(name)) for name in order]

    def workers(self) -> dict[str, Any]:
        return self._call("GET", "/workers")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def refresh_all_workers(self) -> dict[str, Any]:
        return self._call("POST", "/refresh_all_workers")

    def remove_worker(self, address: str) -> bool:
        return bool(self._call("POST", "/remove_worker", {"worker_name": address}).get("removed"))

    def register_worker(self, address: str, check_heart_beat: bool = True) -> dict[str, Any]:
        """Register by address; without worker_status the controller asks the worker itself."""
        return self._call(
            "POST", "/register_worker",
            {"worker_name": address, "check_heart_beat": check_heart_beat},
        )

    def set_dispatch_method(self, method: str) -> str:
        return self._call("POST", "/set_dispatch_method", {"dispatch_method": method})[
            "dispatch_method"
        ]

    def generate_stream(
        self,
        params: dict[str, Any],
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 180.0,
    ) -> Iterator[dict[str, Any]]:
        """Frames of `/worker_generate_stream`; transport failures end with one error frame."""
        url = f"{self.base_url}/worker_generate_stream"
        # A fresh session per stream: a stream holds its connection for its whole life.
        with requests.Session() as session:
            try:
                resp = session.post(
                    url, json=params, stream=True, timeout=(connect_timeout_s, read_timeout_s)
                )
            except requests.RequestException as exc:
                yield {"text": f"cannot reach the controller at {self.base_url}: {exc}",
                       "error_code": WORKER_FAILED}
                return
            with resp:
                if resp.status_code >= 400:
                    yield {"text": f"the controller refused the request (HTTP {resp.status_code}): "
                                   f"{_detail(resp)}", "error_code": WORKER_FAILED}
                    return
                try:
                    yield from iter_frames(resp.iter_content(chunk_size=None))
                except requests.RequestException as exc:
                    yield {"text": f"the stream from {self.base_url} broke off: {exc}",
                           "error_code": WORKER_FAILED}
                except ValueError as exc:
                    yield {"text": f"the controller sent a malformed frame: {exc}",
                           "error_code": WORKER_FAILED}

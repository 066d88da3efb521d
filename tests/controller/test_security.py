"""Tokens, the worker address allowlist, redirects and input limits."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
import requests
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from controller.server import BackgroundServer
from tests.controller.peers import read_frames

WORKER_TOKEN = "worker-secret"
ADMIN_TOKEN = "admin-secret"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def secured(start_controller) -> str:
    return start_controller(worker_token=WORKER_TOKEN, admin_token=ADMIN_TOKEN,
                            status_timeout_s=2).url


def registration(worker) -> dict:
    return {"worker_name": worker.url, "check_heart_beat": True, "worker_status": worker.status()}


def test_registration_needs_the_worker_token(secured, start_worker) -> None:
    worker = start_worker()
    missing = requests.post(secured + "/register_worker", json=registration(worker), timeout=5)
    assert missing.status_code == 401
    assert "CONTROLLER_WORKER_TOKEN" in missing.json()["detail"]
    wrong = requests.post(secured + "/register_worker", json=registration(worker),
                          headers=bearer("guess"), timeout=5)
    assert wrong.status_code == 403
    assert requests.get(secured + "/workers", timeout=5).json()["workers"] == []
    ok = requests.post(secured + "/register_worker", json=registration(worker),
                       headers=bearer(WORKER_TOKEN), timeout=5)
    assert ok.status_code == 200


def test_heartbeat_and_leaving_need_the_worker_token(secured, start_worker) -> None:
    worker = start_worker()
    requests.post(secured + "/register_worker", json=registration(worker),
                  headers=bearer(WORKER_TOKEN), timeout=5)
    beat = {"worker_name": worker.url, "queue_length": 0}
    assert requests.post(secured + "/receive_heart_beat", json=beat, timeout=5).status_code == 401
    assert requests.post(secured + "/receive_heart_beat", json=beat, headers=bearer(WORKER_TOKEN),
                         timeout=5).json() == {"exist": True}
    leave = {"worker_name": worker.url}
    assert requests.post(secured + "/remove_worker", json=leave, timeout=5).status_code == 401
    assert requests.post(secured + "/remove_worker", json=leave, headers=bearer(WORKER_TOKEN),
                         timeout=5).json() == {"removed": True}


def test_admin_operations_need_the_admin_token(secured, start_worker) -> None:
    for path, body in (("/refresh_all_workers", None),
                       ("/set_dispatch_method", {"dispatch_method": "lottery"})):
        assert requests.post(secured + path, json=body, timeout=5).status_code == 401
        assert requests.post(secured + path, json=body, headers=bearer(WORKER_TOKEN),
                             timeout=5).status_code == 403
        assert requests.post(secured + path, json=body, headers=bearer(ADMIN_TOKEN),
                             timeout=5).status_code == 200
    # The admin token also registers by hand.
    worker = start_worker()
    assert requests.post(secured + "/register_worker", json=registration(worker),
                         headers=bearer(ADMIN_TOKEN), timeout=5).status_code == 200


def test_reading_and_chatting_stay_open(secured) -> None:
    assert requests.post(secured + "/list_models", timeout=5).status_code == 200
    assert requests.get(secured + "/health", timeout=5).json()["registration"] == "token"


def test_open_registration_is_reported(controller_url) -> None:
    health = requests.get(controller_url + "/health", timeout=5).json()
    assert (health["registration"], health["admin"]) == ("open", "open")


def test_health_reports_the_limits_in_force(start_controller) -> None:
    url = start_controller(max_images=3, max_image_pixels=1000).url
    limits = requests.get(url + "/health", timeout=5).json()["limits"]
    assert (limits["max_images"], limits["max_image_pixels"]) == (3, 1000)
    assert limits["max_body_bytes"] == 32 * 1024 * 1024


def test_allowlist_limits_worker_hosts(start_controller, start_worker) -> None:
    url = start_controller(worker_allowlist="127.0.0.0/8, *.gpu.internal").url
    worker = start_worker()
    assert requests.post(url + "/register_worker", json=registration(worker),
                         timeout=5).status_code == 200
    outside = {"worker_name": "http://10.1.2.3:21002", "worker_status": worker.status()}
    answer = requests.post(url + "/register_worker", json=outside, timeout=5)
    assert answer.status_code == 403 and "10.1.2.3" in answer.json()["detail"]
    by_name = {"worker_name": "http://evil.example:80", "worker_status": worker.status()}
    assert requests.post(url + "/register_worker", json=by_name, timeout=5).status_code == 403
    good_name = {"worker_name": "http://a100.gpu.internal:21002",
                 "worker_status": worker.status(), "check_heart_beat": False}
    assert requests.post(url + "/register_worker", json=good_name, timeout=5).status_code == 200


def test_registering_from_outside_the_allowlist_is_refused(start_controller, start_worker) -> None:
    url = start_controller(worker_allowlist="10.0.0.0/8,127.0.0.2",
                           admin_token=ADMIN_TOKEN).url
    worker = start_worker()
    body = {"worker_name": "http://127.0.0.2:1", "worker_status": worker.status()}
    refused = requests.post(url + "/register_worker", json=body, timeout=5)
    assert refused.status_code == 403 and "127.0.0.1" in refused.json()["detail"]
    # An admin registering by hand may sit anywhere; the target must still be allowed.
    assert requests.post(url + "/register_worker", json=body, headers=bearer(ADMIN_TOKEN),
                         timeout=5).status_code == 200


def test_controller_never_follows_a_worker_redirect(controller_url) -> None:
    followed = []
    target = FastAPI()

    @target.post("/worker_get_status")
    async def status() -> dict:
        followed.append("status")
        return {"model_names": ["trap"], "speed": 1, "queue_length": 0}

    redirector = FastAPI()

    @redirector.post("/worker_get_status")
    async def redirect() -> RedirectResponse:
        return RedirectResponse(target_server.url + "/worker_get_status", status_code=307)

    with BackgroundServer(target) as target_server, BackgroundServer(redirector) as server:
        answer = requests.post(controller_url + "/register_worker",
                               json={"worker_name": server.url}, timeout=10)
    assert answer.status_code == 422 and "HTTP 307" in answer.json()["detail"]
    assert followed == []


def test_body_over_the_limit_gets_413_and_changes_nothing(start_controller) -> None:
    url = start_controller(max_body_bytes=1000).url
    big = {"worker_name": "http://127.0.0.1:1", "padding": "x" * 2000}
    for path in ("/register_worker", "/worker_generate_stream"):
        answer = requests.post(url + path, json=big, timeout=5)
        assert answer.status_code == 413
        assert "limit is 1000" in answer.json()["detail"]

    def chunks():
        for _ in range(5):
            yield b"x" * 500

    # Chunked bodies declare no length: the cap counts as they arrive, on framework routes
    # and on the bare hot paths alike.
    for path in ("/register_worker", "/get_worker_address", "/worker_generate_stream"):
        chunked = requests.post(url + path, data=chunks(), timeout=5,
                                headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413, (path, chunked.text)
        assert "limit is 1000" in chunked.json()["detail"]
    assert requests.get(url + "/workers", timeout=5).json()["workers"] == []


def png_header_only(width: int, height: int) -> str:
    """A PNG that claims a size (a decompression bomb needs nothing more to be refused)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(
        ">I", zlib.crc32(chunk))
    return base64.b64encode(data).decode()


def small_png() -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(
    ("prompt", "names"),
    [
        ([{"role": "user", "content": "x"}] * 4,
         "prompt messages is 4; the limit is 3 (CONTROLLER_MAX_MESSAGES)"),
        ([{"role": "user", "content": "x" * 101}], "characters is 101"),
        ([{"role": "user", "content": "look", "image": [small_png()] * 3}],
         "the number of images is 3"),
        ([{"role": "user", "content": "bomb", "image": [png_header_only(50_000, 50_000)]}],
         "(50000x50000) is 2500000000"),
        ([{"role": "user", "content": "big", "image": ["A" * 4000]}],
         "in bytes is 3000; the limit is 2000"),
    ],
)
def test_prompt_limits_refuse_before_any_worker_is_asked(
    start_controller, start_worker, prompt, names
) -> None:
    url = start_controller(max_messages=3, max_prompt_chars=100, max_images=2,
                           max_image_bytes=2000, max_image_pixels=1_000_000).url
    worker = start_worker(model_names=["m"])
    requests.post(url + "/register_worker", json=registration(worker), timeout=5)
    answer = requests.post(url + "/worker_generate_stream",
                           json={"model": "m", "prompt": prompt}, timeout=5)
    assert answer.status_code == 422
    assert names in answer.json()["detail"]
    assert worker.requests == []


def test_prompt_within_limits_with_an_image_is_served(controller_url, start_worker) -> None:
    worker = start_worker(model_names=["m"], words=1)
    requests.post(controller_url + "/register_worker", json=registration(worker), timeout=5)
    response = requests.post(controller_url + "/worker_generate_stream", stream=True, timeout=5,
                             json={"model": "m", "prompt": [
                                 {"role": "user", "content": "hi", "image": [small_png()]}]})
    assert [f["error_code"] for f in read_frames(response)] == [0]

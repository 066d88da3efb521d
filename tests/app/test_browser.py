"""Headless Chromium against a real `streamlit run app.py` (DESIGN.md section 8)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from controller.server import free_port, port_is_free
from tests.app.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO_ROOT,
    RunningApp,
    pick_model,
    send_chat,
    streamlit_app,
    wait_idle,
)
from tests.app.conftest import png_bytes, registered, wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture(scope="module")
def simulated_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The app with a simulated embedded worker (fast, no model) and a vision one."""
    tmp = tmp_path_factory.mktemp("simulated-app")
    # Slow answers (about 13 s), so the Stop test can interrupt one.
    slow = {"WORKER_TOKENS_PER_S": "5", "WORKER_ANSWER_TOKENS": "64"}
    with streamlit_app(
        tmp, "--worker-backend", "simulated", "--simulated-workers", "1", env=slow
    ) as app:
        wait_until(lambda: len(registered(app.controller_url)) == 2, timeout_s=60)
        yield app


def test_navigation_between_pages(page, simulated_app: RunningApp) -> None:  # type: ignore[no-untyped-def]
    page.goto(simulated_app.url)
    wait_idle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Admin").click()
    page.wait_for_url("**/admin")
    page.get_by_text("Workers and traffic").wait_for()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Chat").click()
    page.wait_for_url(lambda url: not url.endswith("/admin"))
    page.get_by_test_id("stChatInputTextArea").wait_for()


def test_admin_shows_worker_registered_after_page_opened(  # type: ignore[no-untyped-def]
    page, simulated_app: RunningApp, tmp_path: Path
) -> None:
    page.goto(f"{simulated_app.url}/admin")
    wait_idle(page)
    workers = page.get_by_test_id("stMetric").filter(has_text="Workers").get_by_test_id(
        "stMetricValue"
    )
    before = int(workers.inner_text())
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    late = subprocess.Popen(
        [sys.executable, "-m", "worker", "--backend", "simulated", "--host", "127.0.0.1",
         "--port", str(port), "--worker-address", f"http://127.0.0.1:{port}",
         "--controller-address", simulated_app.controller_url, "--model-name", "late-joiner"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        # No reload: the page's fragment polls the controller by itself.
        sync_api.expect(workers).to_have_text(str(before + 1), timeout=30_000)
    finally:
        late.terminate()
        late.wait(10)


def test_register_form_survives_live_refresh(  # type: ignore[no-untyped-def]
    page, simulated_app: RunningApp
) -> None:
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    unregistered = subprocess.Popen(
        [sys.executable, "-m", "worker", "--backend", "simulated", "--host", "127.0.0.1",
         "--port", str(port), "--worker-address", address, "--no-register",
         "--model-name", "by-hand"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        page.goto(f"{simulated_app.url}/admin")
        wait_idle(page)
        field = page.get_by_label("Register a worker by address")
        field.fill(address)
        time.sleep(4.0)  # past one live refresh of the dashboard fragment
        sync_api.expect(field).to_have_value(address)
        wait_until(lambda: _answers(f"{address}/worker_get_status"))
        page.get_by_role("button", name="Register").click()
        page.get_by_text(f"Registered {address}.").wait_for()
        assert address in registered(simulated_app.controller_url)
    finally:
        unregistered.terminate()
        unregistered.wait(10)


def test_image_upload_draws_boxes(page, simulated_app: RunningApp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(simulated_app.url)
    wait_idle(page)
    pick_model(page, "simulated-vision")
    wait_idle(page)
    image = tmp_path / "street.png"
    image.write_bytes(png_bytes(640, 400, "lightgray"))
    send_chat(page, "detect the car", [image])
    assistant = page.get_by_test_id("stChatMessage").nth(1)
    assistant.get_by_test_id("stImage").wait_for(timeout=30_000)
    wait_idle(page)
    assert "car" in assistant.inner_text()


def test_stop_keeps_the_partial_answer(page, simulated_app: RunningApp) -> None:  # type: ignore[no-untyped-def]
    page.goto(simulated_app.url)
    wait_idle(page)
    pick_model(page, "simulated-chat")
    wait_idle(page)
    send_chat(page, "Tell me a long story")
    assistant = page.get_by_test_id("stChatMessage").nth(1)
    sync_api.expect(assistant).to_contain_text("Simulated answer")
    assistant.get_by_role("button", name="Stop").click()
    sync_api.expect(assistant).to_contain_text("Stopped.")
    wait_idle(page)
    partial = assistant.inner_text()
    time.sleep(1.0)
    assert assistant.inner_text() == partial
    [log] = (simulated_app.log_path.parent / "logs").glob("conv-*.jsonl")
    assert '"finish":"stopped"' in log.read_text()


def test_port_in_use_is_explained_on_the_page(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with streamlit_app(tmp_path, "--controller-port", str(port)) as app:
            page.goto(app.url)
            wait_idle(page)
            alert = page.get_by_test_id("stAlert").filter(has_text="could not start")
            sync_api.expect(alert).to_contain_text(f"port {port}")
            sync_api.expect(alert).to_contain_text("--controller-port")
            assert page.get_by_test_id("stException").count() == 0


@pytest.mark.model
def test_chat_with_embedded_smollm2(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with streamlit_app(tmp_path) as app:
        page.goto(app.url)
        wait_idle(page)
        box = page.get_by_test_id("stChatInputTextArea")
        sync_api.expect(box).to_be_enabled(timeout=120_000)
        ready_s = time.monotonic() - app.started_at
        print(f"chat-ready {ready_s:.1f} s after `streamlit run`")
        send_chat(page, "What is the capital of France? Answer in one sentence.")
        assistant = page.get_by_test_id("stChatMessage").nth(1)
        assistant.wait_for()
        wait_idle(page, timeout_ms=120_000)
        answer = assistant.inner_text().strip()
        assert len(answer) > 3
        assert "failed" not in answer.lower()
        worker_ports = [int(w.rsplit(":", 1)[1]) for w in registered(app.controller_url)]
        assert len(worker_ports) == 1
    # Stopping Streamlit stopped the embedded worker and the controller.
    wait_until(lambda: all(port_is_free("127.0.0.1", p) for p in worker_ports), timeout_s=20)

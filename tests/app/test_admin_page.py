"""AppTest runs of pages/admin.py against a real controller with real simulated workers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from streamlit.testing.v1 import AppTest

from controller.api import create_app
from controller.server import BackgroundServer, free_port
from controller.settings import ControllerSettings
from tests.app.conftest import REPO_ROOT, register_fake_worker, registered, wait_until
from webui import admin_view

ADMIN_PAGE = str(REPO_ROOT / "pages" / "admin.py")


@pytest.fixture
def admin(app_env: Path) -> AppTest:
    admin_view.poll.clear()
    return AppTest.from_file(ADMIN_PAGE, default_timeout=30)


def submit(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    admin_view.poll.clear()
    return button.click().run()


def late_warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "late workers" in w.value]


def metric(at: AppTest, label: str) -> str:
    [value] = [m.value for m in at.metric if m.label == label]
    return value


def test_table_lists_workers_with_totals(admin: AppTest, controller: str, start_worker) -> None:
    address = start_worker()
    register_fake_worker(controller, "http://127.0.0.1:9", ["InternVL2-8B"], queue_length=3)
    admin.run()
    assert not admin.exception
    table = admin.dataframe[0].value
    assert set(table["Address"]) == {address, "http://127.0.0.1:9"}
    assert [list(s) for s in table["Status"]] == [["healthy"], ["healthy"]]
    assert metric(admin, "Workers") == "2"
    assert metric(admin, "Models") == "2"
    assert metric(admin, "Total queue") == "3"


def test_late_workers_are_marked_and_listed_first() -> None:
    snapshot = admin_view.Snapshot(workers=[
        {"address": "http://a:1", "status": "healthy"},
        {"address": "http://b:1", "status": "late"},
        {"address": "http://c:1", "status": "expired"},
    ])
    table = admin_view.worker_table(snapshot, "en")
    assert list(table["Status"]) == [["expired"], ["late"], ["healthy"]]
    assert admin_view.late_workers(snapshot) == ["http://b:1", "http://c:1"]


def test_open_breakers_are_listed_first_with_the_late_ones() -> None:
    snapshot = admin_view.Snapshot(workers=[
        {"address": "http://a:1", "status": "healthy", "breaker": "closed"},
        {"address": "http://b:1", "status": "late", "breaker": "closed"},
        {"address": "http://c:1", "status": "healthy", "breaker": "half_open",
         "consecutive_failures": 3},
        {"address": "http://d:1", "status": "healthy", "breaker": "open",
         "consecutive_failures": 4},
    ])
    table = admin_view.worker_table(snapshot, "en")
    assert list(table["Address"]) == ["http://d:1", "http://b:1", "http://c:1", "http://a:1"]
    assert list(table["Breaker"]) == [["open"], ["closed"], ["half-open"], ["closed"]]
    assert list(table["Failures"]) == [4, 0, 3, 0]
    assert admin_view.open_breakers(snapshot) == ["http://d:1"]


def test_late_worker_warning_on_page(admin: AppTest, controller: str, start_worker) -> None:
    start_worker()
    admin.run()
    assert not late_warnings(admin)
    # A worker that registered with heartbeats and then fell silent.
    requests.post(f"{controller}/register_worker", json={
        "worker_name": "http://127.0.0.1:9", "check_heart_beat": True,
        "worker_status": {"model_names": ["m"], "speed": 1, "queue_length": 0},
    }, timeout=5).raise_for_status()
    wait_until(lambda: any(w["status"] == "late" for w in
                           requests.get(f"{controller}/workers", timeout=5).json()["workers"]),
               timeout_s=30)
    admin_view.poll.clear()
    admin.run()
    [warning] = late_warnings(admin)
    assert "1 late workers: http://127.0.0.1:9" in warning
    assert list(admin.dataframe[0].value["Status"][0]) == ["late"]


def test_register_worker_by_address(admin: AppTest, controller: str, start_worker) -> None:
    address = start_worker(register=False)
    admin.run()
    assert admin.info[0].value == "No worker is registered."
    admin.text_input[0].input(address)
    submit(admin, "Register")
    assert not admin.exception
    assert address in registered(controller)
    assert admin.success[0].value == f"Registered {address}."
    assert address in set(admin.dataframe[0].value["Address"])


def test_remove_worker(admin: AppTest, controller: str, start_worker) -> None:
    address = start_worker()
    admin.run()
    [remove] = [s for s in admin.selectbox if s.label == "Remove worker"]
    remove.select(address)
    submit(admin, "Remove")
    assert address not in registered(controller)
    assert admin.success[0].value == f"Removed {address}."


def test_switch_dispatch_method(admin: AppTest, controller: str) -> None:
    admin.run()
    [method] = [s for s in admin.selectbox if s.label == "Dispatch method"]
    assert method.value == "shortest_queue"
    method.select("lottery")
    submit(admin, "Apply")
    assert requests.get(f"{controller}/workers", timeout=5).json()["dispatch_method"] == "lottery"


def test_refresh_all_drops_unreachable_workers(admin: AppTest, controller: str,
                                               start_worker) -> None:
    alive = start_worker()
    register_fake_worker(controller, "http://127.0.0.1:9", ["ghost"])
    admin.run()
    submit(admin, "Refresh all workers")
    wait_until(lambda: registered(controller) == {alive})
    assert "http://127.0.0.1:9" in admin.success[0].value


def test_password_is_asked_when_configured(
    admin: AppTest, monkeypatch: pytest.MonkeyPatch, start_worker
) -> None:
    monkeypatch.setenv("APP_ADMIN_PASSWORD", "s3cret")
    start_worker()
    admin.run()
    assert not admin.dataframe
    admin.text_input[0].input("wrong")
    admin.button[0].click().run()
    assert admin.error[0].value == "Wrong password."
    admin.text_input[0].input("s3cret")
    admin.button[0].click().run()
    assert admin.dataframe


def test_unreachable_controller_is_an_error_not_a_traceback(
    admin: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_CONTROLLER_URL", "http://127.0.0.1:9")
    admin.run()
    assert not admin.exception
    assert "cannot reach the controller" in admin.error[0].value


def test_charts_show_traffic_from_controller_stats(
    admin: AppTest, controller: str, start_worker
) -> None:
    start_worker()
    admin.run()
    assert [c.value for c in admin.caption if c.value == "No traffic recorded yet."]
    with requests.post(f"{controller}/worker_generate_stream", stream=True, timeout=30, json={
        "model": "simulated-chat", "prompt": [{"role": "user", "content": "hi"}],
    }) as resp:
        resp.content  # noqa: B018 - read the whole stream
    wait_until(lambda: requests.get(f"{controller}/stats", timeout=5).json()["totals"]["requests"])
    time.sleep(1.2)  # one stats interval, so the point with the request is closed
    admin_view.poll.clear()
    admin.run()
    assert not admin.exception
    assert len(admin.get("vega_lite_chart")) == 2


@pytest.fixture
def guarded_controller(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A controller that requires tokens for workers and for admin actions."""
    if "admin_token" not in ControllerSettings.__dataclass_fields__:
        pytest.skip("this controller has no tokens")
    settings = ControllerSettings(host="127.0.0.1", port=free_port(),
                                  admin_token="admin-secret", worker_token="worker-secret")
    server = BackgroundServer(create_app(settings), "127.0.0.1", settings.port,
                              thread_name="test-controller")
    monkeypatch.setenv("APP_CONTROLLER_URL", server.url)
    monkeypatch.setenv("APP_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("APP_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("CONTROLLER_ADMIN_TOKEN", raising=False)
    admin_view.poll.clear()
    with server:
        yield server.url


def test_admin_actions_send_the_controller_token(
    guarded_controller: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = AppTest.from_file(ADMIN_PAGE, default_timeout=30)
    at.run()
    [method] = [s for s in at.selectbox if s.label == "Dispatch method"]
    method.select("lottery")
    submit(at, "Apply")
    assert "CONTROLLER_ADMIN_TOKEN" in at.error[0].value
    monkeypatch.setenv("CONTROLLER_ADMIN_TOKEN", "admin-secret")
    [method] = [s for s in at.selectbox if s.label == "Dispatch method"]
    method.select("lottery")
    submit(at, "Apply")
    assert not at.error
    workers = requests.get(f"{guarded_controller}/workers", timeout=5).json()
    assert workers["dispatch_method"] == "lottery"


def test_open_registration_is_said_plainly(admin: AppTest) -> None:
    admin.run()
    [warning] = [w.value for w in admin.warning if "registration is open" in w.value]
    assert "anyone who can reach this controller can register a worker" in warning
    assert "CONTROLLER_WORKER_TOKEN" in warning
    assert "Registry: in memory (this controller only)" in [c.value for c in admin.caption]


def test_no_registration_warning_with_a_worker_token(guarded_controller: str) -> None:
    at = AppTest.from_file(ADMIN_PAGE, default_timeout=30)
    at.run()
    assert not at.exception
    assert not [w for w in at.warning if "registration is open" in w.value]


def test_breaker_of_a_failing_worker_shows_open(
    admin: AppTest, controller: str, start_worker
) -> None:
    alive = start_worker()
    # Registered but nobody listens: every request to it fails and counts against its breaker.
    register_fake_worker(controller, "http://127.0.0.1:9", ["ghost"])

    def breaker() -> str:
        views = requests.get(f"{controller}/workers", timeout=5).json()["workers"]
        return next(w["breaker"] for w in views if w["address"] == "http://127.0.0.1:9")

    for _ in range(10):
        if breaker() == "open":
            break
        with requests.post(f"{controller}/worker_generate_stream", timeout=30, json={
            "model": "ghost", "prompt": [{"role": "user", "content": "hi"}],
        }) as resp:
            resp.content  # noqa: B018 - read the whole (error) stream
    assert breaker() == "open"
    admin.run()
    assert not admin.exception
    table = admin.dataframe[0].value
    assert list(table["Address"]) == ["http://127.0.0.1:9", alive]
    assert [list(b) for b in table["Breaker"]] == [["open"], ["closed"]]
    assert table["Failures"][0] >= 3
    [warning] = [w.value for w in admin.warning if "circuit breaker open" in w.value]
    assert warning.startswith("1 workers out of dispatch") and "http://127.0.0.1:9" in warning

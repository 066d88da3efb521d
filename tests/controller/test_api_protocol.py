"""The wire protocol over real HTTP: what the original workers and chat client send."""

from __future__ import annotations

import json

import pytest
import requests

from tests.controller.peers import read_frames, register


def post(url: str, path: str, body: object = None, **kwargs) -> requests.Response:
    return requests.post(url + path, json=body, timeout=10, **kwargs)


def workers(url: str) -> list[dict]:
    return requests.get(url + "/workers", timeout=10).json()["workers"]


def test_original_worker_registers_beats_and_is_dispatched(controller_url, start_worker) -> None:
    worker = start_worker(model_names=["InternVL2-8B"])
    # Original workers register without a status: the controller must ask for it.
    register(controller_url, worker.url, status=None)
    assert post(controller_url, "/receive_heart_beat",
                {"worker_name": worker.url, "queue_length": 2}).json() == {"exist": True}
    assert post(controller_url, "/list_models").json() == {"models": ["InternVL2-8B"]}
    assert post(controller_url, "/get_worker_address", {"model": "InternVL2-8B"}).json() == {
        "address": worker.url
    }
    view = workers(controller_url)[0]
    assert (view["queue_length"], view["check_heart_beat"], view["status"]) == (2, True, "healthy")


def test_original_client_calls_work_unchanged(controller_url, start_worker) -> None:
    worker = start_worker(model_names=["InternVL2-8B"], words=3)
    register(controller_url, worker.url, worker.status())
    # The InternVL chat client: refresh, list, stream with its params.
    assert post(controller_url, "/refresh_all_workers").status_code == 200
    models = post(controller_url, "/list_models").json()["models"]
    params = {
        "model": models[0],
        "prompt": [{"role": "system", "content": "be brief"},
                   {"role": "user", "content": "hi", "image": []}],
        "temperature": 0.8, "top_p": 0.7, "max_new_tokens": 64,
        "repetition_penalty": 1.1, "max_input_tiles": 12,
    }
    response = post(controller_url, "/worker_generate_stream", params, stream=True)
    frames = read_frames(response)
    assert [f["text"] for f in frames] == ["word0 ", "word0 word1 ", "word0 word1 word2 "]
    assert all(f["error_code"] == 0 for f in frames)
    assert worker.requests == [params]


def test_fastchat_multimodal_flag_marks_the_model(controller_url, start_worker) -> None:
    worker = start_worker(model_names=["llava-v1.5-7b"])
    body = {"worker_name": worker.url, "check_heart_beat": True,
            "worker_status": worker.status(), "multimodal": True}
    assert post(controller_url, "/register_worker", body).status_code == 200
    assert requests.get(controller_url + "/models", timeout=5).json() == {
        "models": [{"name": "llava-v1.5-7b", "multimodal": True, "workers": 1}]
    }


def test_heartbeat_of_unknown_worker_asks_to_register(controller_url) -> None:
    answer = post(controller_url, "/receive_heart_beat",
                  {"worker_name": "http://127.0.0.1:9", "queue_length": 0})
    assert answer.json() == {"exist": False}


def test_refresh_drops_workers_that_do_not_answer(controller_url, start_worker) -> None:
    alive = start_worker(model_names=["a"])
    gone = start_worker(model_names=["b"])
    register(controller_url, alive.url, alive.status())
    register(controller_url, gone.url, gone.status())
    gone.server.stop()
    alive.behaviour.queue_length = 4
    answer = post(controller_url, "/refresh_all_workers").json()
    assert answer == {"workers": 1, "removed": [gone.url]}
    assert post(controller_url, "/list_models").json() == {"models": ["a"]}
    assert workers(controller_url)[0]["queue_length"] == 4


def test_controller_reports_summed_status_of_live_workers(controller_url, start_worker) -> None:
    one = start_worker(model_names=["a"], speed=1, queue_length=2)
    two = start_worker(model_names=["b", "a"], speed=3, queue_length=1)
    for w in (one, two):
        register(controller_url, w.url, w.status())
    assert post(controller_url, "/worker_get_status").json() == {
        "model_names": ["a", "b"], "speed": 4, "queue_length": 3, "multimodal": False,
    }


def test_remove_worker_and_switch_dispatch_method(controller_url, start_worker) -> None:
    worker = start_worker()
    register(controller_url, worker.url, worker.status())
    assert post(controller_url, "/remove_worker", {"worker_name": worker.url}).json() == {
        "removed": True
    }
    assert workers(controller_url) == []
    assert post(controller_url, "/set_dispatch_method", {"dispatch_method": "lottery"}).json() == {
        "dispatch_method": "lottery"
    }
    assert requests.get(controller_url + "/health", timeout=5).json()["dispatch_method"] == (
        "lottery"
    )


def test_workers_view_has_what_the_admin_page_needs(controller_url, start_worker) -> None:
    worker = start_worker(model_names=["m"], speed=2, multimodal=True)
    register(controller_url, worker.url, worker.status(), check_heart_beat=False)
    view = workers(controller_url)[0]
    assert set(view) >= {
        "address", "model_names", "speed", "queue_length", "in_flight",
        "seconds_since_heartbeat", "check_heart_beat", "status", "multimodal",
    }
    assert (view["address"], view["model_names"], view["speed"]) == (worker.url, ["m"], 2)


BAD_REQUESTS = [
    ("/register_worker", b"{not json", "not valid JSON"),
    ("/register_worker", b"[1, 2]", "must be a JSON object"),
    ("/register_worker", {"check_heart_beat": True}, "worker_name"),
    ("/register_worker", {"worker_name": 5}, "worker_name"),
    ("/register_worker", {"worker_name": "file:///etc/passwd"}, "http:// or https://"),
    ("/register_worker", {"worker_name": "http://"}, "has no host"),
    ("/register_worker", {"worker_name": "http://u:p@host:1"}, "credentials"),
    ("/register_worker", {"worker_name": "http://host:99999"}, "invalid port"),
    ("/register_worker", {"worker_name": "http://h:1", "worker_status": {
        "model_names": ["x"], "speed": 0, "queue_length": 0}}, "speed"),
    ("/register_worker", {"worker_name": "http://h:1", "worker_status": {
        "model_names": "x", "speed": 1, "queue_length": 0}}, "model_names"),
    ("/register_worker", {"worker_name": "http://127.0.0.1:9"}, "unreachable"),
    ("/receive_heart_beat", {"worker_name": "http://h:1", "queue_length": -1}, "queue_length"),
    ("/receive_heart_beat", {"worker_name": "http://h:1", "queue_length": "many"},
     "queue_length"),
    ("/get_worker_address", {}, "model"),
    ("/worker_generate_stream", b"\xff\xfe", "not valid JSON"),
    ("/worker_generate_stream", {"prompt": []}, "model"),
    ("/remove_worker", {"worker_name": "gopher://x"}, "http://"),
    ("/set_dispatch_method", {"dispatch_method": "fastest"}, "unknown dispatch method"),
]


@pytest.mark.parametrize(("path", "body", "names"), BAD_REQUESTS)
def test_bad_input_gets_a_4xx_naming_the_problem_and_changes_nothing(
    controller_url, start_worker, path, body, names
) -> None:
    worker = start_worker()
    register(controller_url, worker.url, worker.status(), check_heart_beat=False)
    before = workers(controller_url)
    if isinstance(body, bytes):
        response = requests.post(controller_url + path, data=body, timeout=10,
                                 headers={"Content-Type": "application/json"})
    else:
        response = post(controller_url, path, body)
    assert 400 <= response.status_code < 500, response.text
    assert names in response.json()["detail"]
    after = workers(controller_url)
    for view in before + after:
        view.pop("seconds_since_heartbeat")
    assert after == before


def test_body_without_content_type_is_read_as_json(controller_url, start_worker) -> None:
    worker = start_worker(model_names=["a"])
    body = json.dumps({"worker_name": worker.url, "check_heart_beat": False,
                       "worker_status": worker.status()})
    response = requests.post(controller_url + "/register_worker", data=body, timeout=10)
    assert response.status_code == 200, response.text


def test_openapi_documents_every_endpoint(controller_url) -> None:
    paths = requests.get(controller_url + "/openapi.json", timeout=5).json()["paths"]
    assert set(paths) >= {
        "/register_worker", "/receive_heart_beat", "/refresh_all_workers", "/list_models",
        "/get_worker_address", "/worker_generate_stream", "/worker_get_status", "/health",
        "/workers", "/models", "/remove_worker", "/set_dispatch_method", "/stats",
    }
    assert all(op.get("description") or op.get("summary")
               for methods in paths.values() for op in methods.values())
    assert requests.get(controller_url + "/docs", timeout=5).status_code == 200


def test_sweep_removes_a_silent_worker_within_expiry_plus_interval(
    start_controller, start_worker, clock
) -> None:
    from controller.registry import Registry

    registry = Registry(heart_beat_expiration_s=30, clock=clock)
    url = start_controller(registry=registry, sweep_interval_s=0.05).url
    silent = start_worker(model_names=["a"])
    beating = start_worker(model_names=["b"])
    register(url, silent.url, silent.status())
    register(url, beating.url, beating.status())
    clock.advance(25)
    post(url, "/receive_heart_beat", {"worker_name": beating.url, "queue_length": 0})
    clock.advance(5.5)  # silent: 30.5 s since its last beat; beating: 5.5 s
    polls = 0
    while len(workers(url)) == 2 and polls < 200:
        silent.closed_event.wait(0.05)  # the sweep runs every 0.05 s in the controller's loop
        polls += 1
    assert [w["address"] for w in workers(url)] == [beating.url]
    assert post(url, "/list_models").json() == {"models": ["b"]}
    assert post(url, "/receive_heart_beat", {"worker_name": silent.url,
                                             "queue_length": 0}).json() == {"exist": False}

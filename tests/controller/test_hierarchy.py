"""A controller registered as a worker of a parent controller."""

from __future__ import annotations

import requests

from tests.controller.peers import read_frames, register


def test_child_controller_serves_its_workers_through_the_parent(
    start_controller, start_worker
) -> None:
    parent = start_controller(status_timeout_s=2)
    worker = start_worker(model_names=["InternVL2-8B"], words=2, speed=2, queue_length=1)
    child = start_controller(parent_controller=parent.url, parent_heart_beat_interval_s=0.2)
    register(child.url, worker.url, worker.status())
    # The child registers (with retries) and beats; a refresh at the parent re-reads its status.
    for _ in range(100):
        requests.post(parent.url + "/refresh_all_workers", timeout=10)
        models = requests.post(parent.url + "/list_models", timeout=5).json()["models"]
        if models:
            break
        worker.closed_event.wait(0.1)
    assert models == ["InternVL2-8B"]
    assert requests.post(parent.url + "/get_worker_address", json={"model": "InternVL2-8B"},
                         timeout=5).json() == {"address": child.url}
    views = requests.get(parent.url + "/workers", timeout=5).json()["workers"]
    assert (views[0]["address"], views[0]["speed"], views[0]["check_heart_beat"]) == (
        child.url, 2, True
    )
    response = requests.post(parent.url + "/worker_generate_stream",
                             json={"model": "InternVL2-8B", "prompt": []},
                             stream=True, timeout=10)
    assert [f["text"] for f in read_frames(response)] == ["word0 ", "word0 word1 "]

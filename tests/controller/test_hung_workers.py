"""Hung workers must not slow anything down: refresh is concurrent, other calls stay fast."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

import requests

from tests.controller.peers import HungWorker, register

STATUS_TIMEOUT_S = 2.0


def test_refresh_with_ten_hung_workers_takes_one_timeout_and_blocks_nobody(
    start_controller, start_worker
) -> None:
    url = start_controller(status_timeout_s=STATUS_TIMEOUT_S).url
    good = start_worker(model_names=["InternVL2-8B"])
    register(url, good.url, good.status())
    with ExitStack() as stack:
        hung = [stack.enter_context(HungWorker()) for _ in range(10)]
        for h in hung:
            register(url, h.url, {"model_names": ["InternVL2-8B"], "speed": 1,
                                  "queue_length": 0}, check_heart_beat=False)
        refresh_result: dict = {}

        def refresh() -> None:
            started = time.perf_counter()
            refresh_result["answer"] = requests.post(url + "/refresh_all_workers",
                                                     timeout=60).json()
            refresh_result["seconds"] = time.perf_counter() - started

        refresher = threading.Thread(target=refresh)
        session = requests.Session()
        session.post(url + "/list_models", timeout=5)  # open the connection before timing
        refresher.start()
        latencies_s = []
        while refresher.is_alive():
            started = time.perf_counter()
            assert session.post(url + "/list_models", timeout=5).json() == {
                "models": ["InternVL2-8B"]
            }
            session.post(url + "/get_worker_address", json={"model": "InternVL2-8B"}, timeout=5)
            latencies_s.append(time.perf_counter() - started)
        refresher.join()

    latencies_s.sort()
    print(
        f"\nrefresh with 10 hung workers: {refresh_result['seconds']:.2f} s; "
        f"list_models+get_worker_address during it: n={len(latencies_s)}, "
        f"p50={latencies_s[len(latencies_s) // 2] * 1000:.1f} ms, "
        f"max={latencies_s[-1] * 1000:.1f} ms"
    )
    assert sorted(refresh_result["answer"]["removed"]) == sorted(h.url for h in hung)
    # Concurrent status calls: one timeout in all, where one after another would take ten.
    assert refresh_result["seconds"] < STATUS_TIMEOUT_S * 1.5
    # Not blocked behind the refresh: a blocked call would wait out the timeout (2 s).
    assert len(latencies_s) > 10
    assert latencies_s[-1] < 0.5

"""Server time of one admin refresh with many registered workers.

Run: `python -m tests.app.admin_timing [N_WORKERS]`; prints milliseconds per refresh.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import requests
from streamlit.testing.v1 import AppTest

from controller.api import create_app
from controller.server import BackgroundServer, free_port
from controller.settings import ControllerSettings
from tests.app.conftest import REPO_ROOT, register_fake_worker
from webui import admin_view


def main(n_workers: int = 200, runs: int = 10) -> None:
    settings = ControllerSettings(host="127.0.0.1", port=free_port(), stats_interval_s=0.2)
    with BackgroundServer(create_app(settings), "127.0.0.1", settings.port) as server:
        for i in range(n_workers):
            # Addresses nobody listens on, status given: the controller asks none of them.
            register_fake_worker(server.url, f"http://10.0.{i // 250}.{i % 250 + 1}:21002",
                                 [f"model-{i % 20}"], queue_length=i % 7)
        time.sleep(2.0)  # some points in the /stats ring buffer, each with 200 queue lengths
        os.environ["APP_CONTROLLER_URL"] = server.url
        os.environ["APP_LOG_DIR"] = tempfile.mkdtemp()
        at = AppTest.from_file(str(REPO_ROOT / "pages" / "admin.py"), default_timeout=60)
        at.run()
        assert len(at.dataframe[0].value) == n_workers, at.exception
        polled, cached = [], []
        for _ in range(runs):
            admin_view.poll.clear()
            start = time.perf_counter()
            at.run()
            polled.append(time.perf_counter() - start)
            start = time.perf_counter()
            at.run()
            cached.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(runs):
            requests.get(f"{server.url}/workers", timeout=5).raise_for_status()
            requests.get(f"{server.url}/stats", timeout=5).raise_for_status()
        http_ms = (time.perf_counter() - start) / runs * 1000
    print(f"{n_workers} workers: refresh with poll {statistics.median(polled) * 1000:.0f} ms, "
          f"from cache {statistics.median(cached) * 1000:.0f} ms (median of {runs}); "
          f"/workers + /stats alone {http_ms:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)

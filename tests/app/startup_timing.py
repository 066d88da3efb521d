"""Time from `streamlit run app.py` to a chat-ready page, with the real embedded model.

Run: `python -m tests.app.startup_timing [RUNS]`. Chat-ready: the browser shows the page with the
model picked and the chat input enabled.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import expect, sync_playwright

from tests.app.browser import CHROMIUM, CHROMIUM_ARGS, streamlit_app, wait_idle


def measure_once(browser) -> dict[str, float]:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp, streamlit_app(Path(tmp)) as app:
        healthy_s = time.monotonic() - app.started_at
        page = browser.new_page()
        page.goto(app.url)
        wait_idle(page)
        shown_s = time.monotonic() - app.started_at
        expect(page.get_by_test_id("stChatInputTextArea")).to_be_enabled(timeout=120_000)
        ready_s = time.monotonic() - app.started_at
        with contextlib.suppress(requests.RequestException):
            requests.get(f"{app.controller_url}/health", timeout=2).raise_for_status()
        page.close()
    return {"healthy": healthy_s, "page": shown_s, "chat-ready": ready_s}


def main(runs: int = 3) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        results = [measure_once(browser) for _ in range(runs)]
        browser.close()
    for key in ("healthy", "page", "chat-ready"):
        values = [r[key] for r in results]
        print(f"{key:>10}: median {statistics.median(values):.1f} s "
              f"({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)

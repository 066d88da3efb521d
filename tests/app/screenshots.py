"""Take docs/chat.png and docs/admin.png from a real `streamlit run app.py` in headless Chromium.

Run: `python -m tests.app.screenshots` (needs /usr/bin/chromium and the embedded model).
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
import time
from pathlib import Path

import requests
from PIL import Image, ImageDraw
from playwright.sync_api import sync_playwright

from protocol.frames import iter_frames
from tests.app.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO_ROOT,
    pick_model,
    send_chat,
    streamlit_app,
    wait_idle,
)
from tests.app.conftest import registered, wait_until
from webui.boxes import GRID, parse_boxes

QUESTION = "detect the red car"


def ask(controller_url: str, model: str, text: str, image_png: bytes | None = None) -> str:
    """One answer through the controller, as any client would get it."""
    import base64

    message = {"role": "user", "content": text}
    if image_png:
        message["image"] = [base64.b64encode(image_png).decode()]
    with requests.post(f"{controller_url}/worker_generate_stream", stream=True, timeout=120,
                       json={"model": model, "prompt": [message], "max_new_tokens": 48}) as resp:
        frames = list(iter_frames(resp.iter_content(chunk_size=None)))
    return frames[-1]["text"] if frames else ""


def street_scene(controller_url: str, size: tuple[int, int] = (720, 450)) -> bytes:
    """A drawn street with a red car where the simulated vision worker will box it."""
    image = Image.new("RGB", size, "#bfe3f7")
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((0, height * 0.62, width, height), fill="#7a7a7a")
    draw.rectangle((0, height * 0.78, width, height * 0.8), fill="#f2f2f2")
    draw.ellipse((width * 0.78, height * 0.06, width * 0.9, height * 0.25), fill="#ffd34d")
    blank = io.BytesIO()
    image.save(blank, format="PNG")
    [box] = parse_boxes(ask(controller_url, "simulated-vision", QUESTION, blank.getvalue()))
    x1, y1 = box.x1 / GRID * width, box.y1 / GRID * height
    x2, y2 = box.x2 / GRID * width, box.y2 / GRID * height
    body_top = y1 + (y2 - y1) * 0.35
    draw.rounded_rectangle((x1 + 8, body_top, x2 - 8, y2 - (y2 - y1) * 0.2), 18, fill="#d62828")
    draw.rounded_rectangle((x1 + (x2 - x1) * 0.22, y1 + 10, x2 - (x2 - x1) * 0.22, body_top + 6),
                           14, fill="#b71c1c")
    wheel = (y2 - y1) * 0.14
    for cx in (x1 + (x2 - x1) * 0.25, x2 - (x2 - x1) * 0.25):
        draw.ellipse((cx - wheel, y2 - 2 * wheel - 6, cx + wheel, y2 - 6), fill="#222")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def traffic(controller_url: str, seconds: float) -> None:
    """Some requests to every model so the admin charts have something to show."""
    deadline = time.monotonic() + seconds

    def loop(model: str) -> None:
        while time.monotonic() < deadline:
            ask(controller_url, model, "Say hello in five words.")

    threads = [threading.Thread(target=loop, args=(m,)) for m in
               ("simulated-chat", "simulated-chat", "SmolLM2-135M-Instruct")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    os.environ["CONTROLLER_STATS_INTERVAL"] = "2"
    docs = REPO_ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp, streamlit_app(
        Path(tmp), "--simulated-workers", "2"
    ) as app, sync_playwright() as playwright:
        wait_until(lambda: len(registered(app.controller_url)) == 3, timeout_s=120)
        scene = Path(tmp) / "street.png"
        scene.write_bytes(street_scene(app.controller_url))
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1500})
        page.goto(app.url)
        wait_idle(page)
        pick_model(page, "SmolLM2-135M-Instruct")
        wait_idle(page)
        send_chat(page, "In one sentence, what is a controller in a model serving system?")
        page.get_by_test_id("stChatMessage").nth(1).wait_for()
        wait_idle(page, timeout_ms=120_000)
        pick_model(page, "simulated-vision")
        wait_idle(page)
        send_chat(page, QUESTION, [scene])
        try:
            page.get_by_test_id("stChatMessage").nth(3).get_by_test_id("stImage").wait_for()
        except Exception:
            page.screenshot(path=str(Path(tempfile.gettempdir()) / "chat-failed.png"))
            raise
        wait_idle(page)
        page.screenshot(path=str(docs / "chat.png"), full_page=True)

        traffic(app.controller_url, 16.0)
        page.goto(f"{app.url}/admin")
        wait_idle(page)
        time.sleep(4)  # one more live refresh, so the charts include the last points
        page.screenshot(path=str(docs / "admin.png"), full_page=True)
        browser.close()
    print(f"wrote {docs / 'chat.png'} and {docs / 'admin.png'}")


if __name__ == "__main__":
    main()

"""Units of webui/: settings, boxes, images, generation params and the conversation log."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from PIL import Image

from tests.app.conftest import png_bytes
from webui.boxes import LabelledBox, draw_boxes, parse_boxes, strip_grounding
from webui.convlog import ConversationLog, message_record, read_turns
from webui.generation import BOUNDS, Message, build_params, clamp_options, last_image_before
from webui.images import ImageRejected, load_image
from webui.settings import AppSettingsError, parse_settings

# -- settings ------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = parse_settings([], {})
    assert (settings.controller_host, settings.controller_port) == ("0.0.0.0", 10075)
    assert settings.local_controller_url == "http://127.0.0.1:10075"
    assert settings.embedded_worker and settings.boots_controller
    assert settings.max_images == 4


def test_arguments_override_environment() -> None:
    env = {"CONTROLLER_PORT": "10080", "CONTROLLER_DISPATCH_METHOD": "lottery",
           "APP_EMBEDDED_WORKER": "0", "APP_ADMIN_PASSWORD": "pw"}
    settings = parse_settings(["--controller-port", "10090", "--simulated-workers", "2"], env)
    assert settings.controller_port == 10090
    assert settings.dispatch_method == "lottery"
    assert not settings.embedded_worker
    assert settings.simulated_workers == 2
    assert settings.admin_password == "pw"


def test_external_controller_url_means_no_own_controller() -> None:
    settings = parse_settings(["--controller-url", "http://gpu-box:10075/"], {})
    assert not settings.boots_controller
    assert settings.local_controller_url == "http://gpu-box:10075"


@pytest.mark.parametrize(("argv", "env", "names"), [
    (["--dispatch-method", "random"], {}, "dispatch method"),
    (["--controller-port", "70000"], {}, "controller port"),
    ([], {"CONTROLLER_PORT": "ten"}, "CONTROLLER_PORT"),
    (["--bogus"], {}, "--bogus"),
    (["--controller-url", "gpu-box:10075"], {}, "controller URL"),
    ([], {"APP_EMBEDDED_WORKER": "maybe"}, "APP_EMBEDDED_WORKER"),
])
def test_bad_option_names_itself(argv: list[str], env: dict[str, str], names: str) -> None:
    with pytest.raises(AppSettingsError, match=names):
        parse_settings(argv, env)


# -- boxes ---------------------------------------------------------------------------------


def test_parse_boxes_reads_every_box_of_every_ref() -> None:
    text = ("Here: <ref>cat</ref><box>[[10, 20, 300, 400], [500, 500, 600, 700]]</box> and "
            "<ref>dog</ref><box>[[900, 900, 1200, 950]]</box>.")
    assert parse_boxes(text) == [
        LabelledBox("cat", 10, 20, 300, 400),
        LabelledBox("cat", 500, 500, 600, 700),
        LabelledBox("dog", 900, 900, 1000, 950),  # clamped to the 1000 grid
    ]
    assert strip_grounding(text) == "Here: cat and dog."


@pytest.mark.parametrize("text", [
    "no boxes at all",
    "<ref>cat</ref><box>[[1, 2, 3]]</box>",
    "<ref>cat</ref><box>not json</box>",
    "<ref>cat</ref><box>[[1, 2, 3, 4]]",  # still streaming: no closing tag yet
])
def test_parse_boxes_skips_malformed(text: str) -> None:
    assert parse_boxes(text) == []


def test_draw_boxes_scales_grid_to_pixels() -> None:
    drawn = draw_boxes(png_bytes(400, 200, "white"), [LabelledBox("", 250, 250, 750, 750)])
    image = Image.open(io.BytesIO(drawn)).convert("RGB")
    assert image.size == (400, 200)
    # The outline runs along x = 100 px from y = 50 to 150 px; the centre stays white.
    assert image.getpixel((100, 100)) != (255, 255, 255)
    assert image.getpixel((200, 100)) == (255, 255, 255)


# -- images --------------------------------------------------------------------------------


def test_webp_is_converted_to_png_and_named_by_content() -> None:
    webp = png_bytes(image_format="WEBP")
    image = load_image(webp, "photo.webp")
    assert image.extension == "png"
    assert Image.open(io.BytesIO(image.data)).format == "PNG"
    assert image.file_name == f"{image.sha256}.png"
    assert load_image(webp, "again.webp").sha256 == image.sha256


def test_jpeg_is_kept_as_is() -> None:
    jpeg = png_bytes(image_format="JPEG")
    image = load_image(jpeg, "a.jpg")
    assert image.data == jpeg and image.extension == "jpg"


def test_non_image_is_rejected() -> None:
    with pytest.raises(ImageRejected, match=r"notes\.png"):
        load_image(b"not an image", "notes.png")


# -- generation params ---------------------------------------------------------------------


def test_options_are_clamped_to_bounds() -> None:
    clean = clamp_options({"temperature": 7, "max_new_tokens": "12.6", "top_p": None})
    assert clean["temperature"] == BOUNDS["temperature"].high
    assert clean["max_new_tokens"] == BOUNDS["max_new_tokens"].low
    assert clean["top_p"] == BOUNDS["top_p"].default
    assert isinstance(clean["max_input_tiles"], int)


def test_params_carry_images_only_for_models_that_take_them() -> None:
    image = load_image(png_bytes(), "a.png")
    messages = [Message("user", "what is this?", [image]), Message("assistant", "a sky"),
                Message("user", "sure?")]
    params = build_params("m", " Be brief. ", messages, {}, send_images=True)
    assert params["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert params["prompt"][1]["image"] == [image.base64()]
    assert "image" not in params["prompt"][3]
    text_only = build_params("m", "", messages, {}, send_images=False)
    assert all("image" not in m for m in text_only["prompt"])
    assert text_only["prompt"][0]["role"] == "user"
    assert last_image_before(messages, 3) is image


# -- conversation log ----------------------------------------------------------------------


def test_image_is_saved_once(tmp_path: Path) -> None:
    log = ConversationLog(tmp_path)
    image = load_image(png_bytes(), "a.png")
    first = log.save_image(image)
    mtime = first.stat().st_mtime_ns
    assert log.save_image(image) == first
    assert first.stat().st_mtime_ns == mtime
    assert [p.name for p in (tmp_path / "images").iterdir()] == [image.file_name]


def test_turn_after_a_torn_line_starts_on_a_fresh_line(tmp_path: Path) -> None:
    log = ConversationLog(tmp_path)
    path = log.append_turn({"model": "m", "messages": [message_record("user", "hi")]})
    with path.open("a") as f:
        f.write('{"model": "m", "messages": [{"role": "us')  # a crash mid-write
    log.append_turn({"model": "m", "messages": [message_record("user", "again")]})
    turns = list(read_turns(path.read_text().splitlines()))
    assert [t["messages"][0]["content"] for t in turns] == ["hi", "again"]


def test_concurrent_turns_never_interleave(tmp_path: Path) -> None:
    log = ConversationLog(tmp_path)
    long_text = "x" * 100_000

    def write(i: int) -> None:
        for _ in range(5):
            log.append_turn({"writer": i, "messages": [message_record("user", long_text)]})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [path] = tmp_path.glob("conv-*.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 20
    assert all(json.loads(line)["messages"][0]["content"] == long_text for line in lines)


def test_page_limits_follow_a_stricter_controller() -> None:
    from webui.chat_view import effective_settings

    page = parse_settings([], {})
    lowered = effective_settings(page, {"max_image_pixels": 1000, "max_image_bytes": 10**12,
                                        "max_images": 1})
    assert lowered.max_image_pixels == 1000
    assert lowered.max_image_bytes == page.max_image_bytes  # the page's own is stricter
    assert lowered.max_images == page.max_images  # per conversation on the page: not lowered
    assert effective_settings(page, {}) is page


def test_controller_limits_are_read_from_health() -> None:
    from controller.api import create_app
    from controller.server import BackgroundServer, free_port
    from controller.settings import ControllerSettings
    from webui.chat_view import fetch_controller_limits

    port = free_port()
    settings = ControllerSettings(host="127.0.0.1", port=port, max_image_pixels=1234)
    with BackgroundServer(create_app(settings), port=port) as server:
        assert fetch_controller_limits(server.url)["max_image_pixels"] == 1234
    assert fetch_controller_limits(f"http://127.0.0.1:{free_port()}") == {}

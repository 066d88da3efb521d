"""AppTest runs of pages/chat.py against a real controller with real simulated workers."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from streamlit.testing.v1 import AppTest

from controller.server import BackgroundServer
from protocol.frames import WORKER_FAILED, encode_frame
from tests.app.conftest import REPO_ROOT, png_bytes, png_header_only, register_fake_worker
from webui import chat_view

CHAT_PAGE = str(REPO_ROOT / "pages" / "chat.py")


@pytest.fixture
def chat(app_env: Path) -> AppTest:
    chat_view.fetch_models.clear()
    return AppTest.from_file(CHAT_PAGE, default_timeout=30)


def assistant_texts(at: AppTest) -> list[str]:
    return [
        "\n".join(md.value for md in message.markdown)
        for message in at.chat_message if message.name == "assistant"
    ]


def log_lines(log_dir: Path) -> list[dict]:
    lines = []
    for path in sorted(log_dir.glob("conv-*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


def test_picker_lists_models_in_controller_order(chat: AppTest, controller: str) -> None:
    register_fake_worker(controller, "http://127.0.0.1:9", ["zeta-chat", "InternVL2-8B"])
    register_fake_worker(controller, "http://127.0.0.1:10", ["InternVL2_5-78B", "alpha"])
    chat.run()
    assert chat.selectbox(key="chat_model").options == [
        "InternVL2_5-78B", "InternVL2-8B", "alpha", "zeta-chat"
    ]
    assert not chat.exception


def test_empty_model_list_explains_how_to_start_a_worker(chat: AppTest, controller: str) -> None:
    chat.run()
    assert chat.info[0].value == "No model is available yet."
    assert f"--controller-address {controller}" in chat.code[0].value
    assert chat.chat_input[0].disabled


def test_first_model_is_picked_when_a_worker_arrives(chat: AppTest, start_worker) -> None:
    chat.run()
    assert chat.selectbox(key="chat_model").value is None
    start_worker()
    chat_view.fetch_models.clear()
    chat.run()
    assert chat.selectbox(key="chat_model").value == "simulated-chat"
    assert not chat.chat_input[0].disabled


def test_chat_turn_streams_answer_and_logs_it(
    chat: AppTest, start_worker, app_env: Path
) -> None:
    start_worker()
    chat.run()
    chat.chat_input[0].set_value("Hello there").run()
    assert not chat.exception
    [answer] = assistant_texts(chat)
    assert answer.strip()
    [turn] = log_lines(app_env)
    assert turn["model"] == "simulated-chat"
    assert [m["role"] for m in turn["messages"]] == ["user", "assistant"]
    assert turn["messages"][0]["content"] == "Hello there"
    assert turn["messages"][1]["content"] == answer
    assert turn["finish"] == "stop"


def test_regenerate_replaces_answer_and_clear_empties_conversation(
    chat: AppTest, start_worker, app_env: Path
) -> None:
    start_worker()
    chat.run()
    chat.chat_input[0].set_value("Hello").run()
    [regenerate] = [b for b in chat.button if b.label == "Regenerate"]
    regenerate.click().run()
    assert len(assistant_texts(chat)) == 1
    assert len(log_lines(app_env)) == 2
    [clear] = [b for b in chat.button if b.label == "Clear"]
    clear.click().run()
    assert not chat.chat_message


def test_image_upload_and_boxes_are_drawn(chat: AppTest, start_worker, app_env: Path) -> None:
    start_worker(multimodal=True)
    chat.run()
    assert chat.selectbox(key="chat_model").value == "simulated-vision"
    image = png_bytes()
    chat.chat_input[0].upload("cat.png", image, "image/png").set_value("detect the cat").run()
    assert not chat.exception
    [user, assistant] = chat.chat_message
    assert len(user.get("image")) == 1
    # The answer's <ref>/<box> markup is replaced by the drawn image with its label.
    assert "<box>" not in assistant_texts(chat)[0]
    assert len(assistant.get("image")) == 1
    assert "cat" in assistant.get("image")[0].proto.imgs[0].caption
    [turn] = log_lines(app_env)
    [name] = turn["messages"][0]["images"]
    assert (app_env / "images" / name).read_bytes() == image
    assert "<ref>cat</ref>" in turn["messages"][1]["content"]


def test_images_beyond_the_limit_are_not_added(
    chat: AppTest, start_worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_MAX_IMAGES", "2")
    start_worker(multimodal=True)
    chat.run()
    for i, color in enumerate(("red", "green", "blue")):
        chat.chat_input[0].upload(f"{i}.png", png_bytes(color=color), "image/png")
    chat.chat_input[0].set_value("what do you see?").run()
    assert not chat.exception
    assert len(chat.chat_message[0].get("image")) == 1  # one st.image call with a list
    assert len(chat.session_state.chat_messages[0].images) == 2
    assert "At most 2 images" in chat.warning[0].value
    assert "2.png" in chat.warning[0].value


def test_text_model_offers_no_upload(chat: AppTest, start_worker) -> None:
    start_worker()
    chat.run()
    assert not chat.chat_input[0].proto.accept_file


def test_error_frame_is_shown_with_its_cause(chat: AppTest, controller: str, app_env: Path) -> None:
    # Registered but not listening: the controller's proxy fails and says why in an error frame.
    register_fake_worker(controller, "http://127.0.0.1:9", ["ghost-model"])
    chat.run()
    chat.chat_input[0].set_value("anyone?").run()
    assert not chat.exception
    [error] = chat.error
    assert error.value.startswith("The answer failed:")
    assert "ghost-model" in error.value or "127.0.0.1:9" in error.value
    [turn] = log_lines(app_env)
    assert turn["finish"] == "error"


def test_chinese_switch_translates_the_page(chat: AppTest, start_worker) -> None:
    start_worker()
    chat.session_state["lang"] = "zh"
    chat.run()
    assert chat.selectbox(key="chat_model").label == "模型"
    assert chat.text_area(key="system_prompt").label == "系统提示词"


def test_interrupted_answer_is_finished_once(tmp_path: Path) -> None:
    # The streaming run and the run that took over after Stop both try to finish the answer.
    messages = [chat_view.Message("user", "hi")]
    stream = chat_view._Stream(messages, "m", "", {}, "conv-1", text="partial")
    log = chat_view.ConversationLog(tmp_path)
    assert stream.finish(log, stopped=True)
    assert not stream.finish(log, stopped=False)
    assert [(m.role, m.content, m.stopped) for m in messages] == [
        ("user", "hi", False), ("assistant", "partial", True)
    ]
    [turn] = log_lines(tmp_path)
    assert turn["finish"] == "stopped"


def failing_worker_app() -> Starlette:
    """A worker that answers two frames, then an error frame (a crash mid-answer)."""

    async def generate(_: Request) -> StreamingResponse:
        async def frames() -> AsyncIterator[bytes]:
            yield encode_frame("The answer")
            yield encode_frame("The answer is")
            yield encode_frame("CUDA out of memory on the worker", WORKER_FAILED)

        return StreamingResponse(frames())

    async def status(_: Request) -> JSONResponse:
        return JSONResponse({"model_names": ["flaky"], "speed": 1, "queue_length": 0})

    return Starlette(routes=[
        Route("/worker_generate_stream", generate, methods=["POST"]),
        Route("/worker_get_status", status, methods=["GET", "POST"]),
    ])


def test_error_mid_answer_keeps_the_partial_answer(
    chat: AppTest, controller: str, app_env: Path
) -> None:
    with BackgroundServer(failing_worker_app(), thread_name="flaky-worker") as worker:
        register_fake_worker(controller, worker.url, ["flaky"])
        chat.run()
        chat.chat_input[0].set_value("question").run()
    assert assistant_texts(chat) == ["The answer is"]
    assert "CUDA out of memory" in chat.error[0].value
    [turn] = log_lines(app_env)
    assert turn["finish"] == "error"
    assert turn["messages"][1]["content"] == "The answer is"


def test_image_over_the_byte_limit_is_not_sent(
    chat: AppTest, start_worker, app_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_MAX_IMAGE_BYTES", "5000")
    start_worker(multimodal=True)
    chat.run()
    small, large = png_bytes(40, 40), png_bytes(600, 600, color="white")
    large += b"\0" * 5000  # trailing bytes: over the limit whatever the compression
    chat.chat_input[0].upload("small.png", small, "image/png")
    chat.chat_input[0].upload("large.png", large, "image/png")
    chat.chat_input[0].set_value("compare them").run()
    assert not chat.exception
    [warning] = chat.warning
    assert f"large.png is {len(large) / 1024:.1f} KiB; the limit is 4.9 KiB" in warning.value
    [user] = chat.session_state.chat_messages[:1]
    assert [i.original_name for i in user.images] == ["small.png"]
    [turn] = log_lines(app_env)
    assert len(turn["messages"][0]["images"]) == 1
    assert len(list((app_env / "images").iterdir())) == 1


def test_pixel_bomb_is_refused_from_its_header_without_decoding(
    chat: AppTest, start_worker, app_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_worker(multimodal=True)
    chat.run()
    chat.chat_input[0].upload("cat.png", png_bytes(), "image/png")
    chat.chat_input[0].set_value("detect the cat").run()
    assert not chat.warning

    # 8000 x 6000 = 48 M pixels in a few bytes: over the default 40 M.
    bomb = png_header_only(8000, 6000)
    opened = []
    real_open = Image.open

    def watched_open(fp: object, *args: object, **kwargs: object) -> object:
        opened.append(fp.getvalue() if isinstance(fp, io.BytesIO) else fp)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", watched_open)
    chat.chat_input[0].upload("bomb.png", bomb, "image/png")
    chat.chat_input[0].set_value("and this one?").run()
    assert not chat.exception
    [warning] = chat.warning
    assert "bomb.png is 8000x6000 = 48.0 M pixels; the limit is 40 M pixels" in warning.value
    assert bomb not in opened
    # What was accepted before stays; the new text went without the refused image.
    messages = chat.session_state.chat_messages
    assert [(m.role, len(m.images)) for m in messages] == [
        ("user", 1), ("assistant", 0), ("user", 0), ("assistant", 0)
    ]
    assert len(list((app_env / "images").iterdir())) == 1


def test_too_long_message_is_refused_and_nothing_is_sent(
    chat: AppTest, start_worker, app_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_MAX_PROMPT_CHARS", "300")
    start_worker()
    chat.run()
    chat.chat_input[0].set_value("x" * 301).run()
    assert not chat.exception
    assert chat.error[0].value.startswith("Your message is 301 characters long; the limit is 300.")
    assert not chat.chat_message
    assert not log_lines(app_env)

    chat.chat_input[0].set_value("hi").run()
    assert not chat.error
    used = len(chat.text_area(key="system_prompt").value) + sum(
        len(m.content) for m in chat.session_state.chat_messages
    )
    chat.chat_input[0].set_value("y" * max(1, 301 - used)).run()
    assert "With this message the conversation would be" in chat.error[0].value
    assert len(chat.session_state.chat_messages) == 2
    assert len(log_lines(app_env)) == 1

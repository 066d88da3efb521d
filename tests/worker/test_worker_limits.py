"""Input limits in the worker: messages, text, images, bytes, pixels (before decoding), body."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest
import requests

from protocol.frames import BAD_REQUEST
from tests.worker.worker_helpers import TIMEOUT_S, chat, png_base64, post_frames
from worker.backends.simulated import SimulatedBackend
from worker.limits import InputLimits, check_input_limits
from worker.params import InvalidParams
from worker.settings import WorkerSettings


def png_header_base64(width: int, height: int) -> str:
    """A PNG whose header claims any size: a stand-in for a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk).decode()


def vision_worker(start_worker, **limits):
    backend = SimulatedBackend(multimodal=True, tokens_per_s=1000.0, time_to_first_token_s=0.0)
    return start_worker(backend, **limits)


def with_images(*images: str) -> dict:
    return chat("What is this?", extra={"image": list(images)})


@pytest.mark.parametrize(
    ("payload", "limits", "message"),
    [
        ({"prompt": [{"role": "user", "content": "a"}] * 3}, InputLimits(max_messages=2),
         "the number of prompt messages is 3; the limit is 2 (WORKER_MAX_MESSAGES"),
        ({"prompt": [{"role": "system", "content": "abc"}, {"role": "user", "content": "de"}]},
         InputLimits(max_prompt_chars=4),
         "text length in characters is 5; the limit is 4 (WORKER_MAX_PROMPT_CHARS"),
        (with_images("x", "y", "z"), InputLimits(max_images=2),
         "the number of images is 3; the limit is 2 (WORKER_MAX_IMAGES"),
        (with_images("A" * 4000), InputLimits(max_image_bytes=2000),
         r"the size of prompt[1].image[0] in bytes is 3000; the limit is 2000 "
         "(WORKER_MAX_IMAGE_BYTES"),
        (with_images(f"data:image/png;base64,{png_header_base64(10_000, 5_000)}"),
         InputLimits(max_image_pixels=40_000_000),
         "the pixel count of prompt[1].image[0] (10000x5000) is 50000000; the limit is "
         "40000000 (WORKER_MAX_IMAGE_PIXELS"),
    ],
)
def test_each_limit_is_named_in_its_error(payload, limits, message):
    with pytest.raises(InvalidParams) as error:
        check_input_limits(payload, limits)

    assert message in str(error.value)


def test_a_request_within_the_limits_passes():
    check_input_limits(with_images(png_base64(64, 48)), InputLimits())


def test_the_image_size_is_judged_from_base64_length_without_decoding():
    # Not valid base64 at all: refusing it by size proves nothing tried to decode it first.
    with pytest.raises(InvalidParams, match="in bytes is 15000000"):
        check_input_limits(with_images("!" * 20_000_000), InputLimits())


def test_a_decompression_bomb_is_refused_before_anything_decodes_it(start_worker, monkeypatch):
    from PIL import Image

    small = png_base64(64, 48)  # made before Pillow is booby-trapped

    def never(*_args, **_kwargs):
        raise AssertionError("an image was opened before its size was checked")

    monkeypatch.setattr(Image, "open", never)
    monkeypatch.setattr(Image.Image, "load", never)
    worker = vision_worker(start_worker)

    frames = post_frames(worker.url, with_images(png_header_base64(65_535, 65_535)))

    assert len(frames) == 1
    assert frames[0]["error_code"] == BAD_REQUEST
    assert "65535x65535" in frames[0]["text"]
    assert "WORKER_MAX_IMAGE_PIXELS" in frames[0]["text"]
    # An image within the limits is still described from its header alone.
    answer = post_frames(worker.url, with_images(small))[-1]
    assert answer["text"] == "I received 1 image: 64x48 PNG."


@pytest.mark.parametrize(
    ("limits", "payload", "named"),
    [
        ({"max_messages": 1}, chat("Hi"), "WORKER_MAX_MESSAGES"),
        ({"max_prompt_chars": 10}, chat("A question longer than ten characters"),
         "WORKER_MAX_PROMPT_CHARS"),
        ({"max_images": 1}, with_images(png_base64(4, 4), png_base64(4, 4)),
         "WORKER_MAX_IMAGES"),
        ({"max_image_bytes": 100}, with_images(png_base64(64, 64)), "WORKER_MAX_IMAGE_BYTES"),
        ({"max_image_pixels": 100}, with_images(png_base64(11, 10)), "WORKER_MAX_IMAGE_PIXELS"),
    ],
)
def test_each_limit_is_one_error_frame_from_the_worker(start_worker, limits, payload, named):
    worker = vision_worker(start_worker, **limits)

    frames = post_frames(worker.url, payload)

    assert len(frames) == 1
    assert frames[0]["error_code"] == BAD_REQUEST
    assert named in frames[0]["text"]


def test_a_body_over_the_cap_is_413_with_a_json_message(start_worker):
    worker = vision_worker(start_worker, max_body_bytes=1000)

    response = requests.post(f"{worker.url}/worker_generate_stream",
                             json=chat("x" * 2000), timeout=TIMEOUT_S)

    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "the limit is 1000 bytes" in detail
    assert "WORKER_MAX_BODY_BYTES" in detail


def test_a_chunked_body_over_the_cap_is_413_too(start_worker):
    worker = vision_worker(start_worker, max_body_bytes=1000)

    def chunks():
        # No Content-Length: the cap must hold while reading.
        for _ in range(10):
            yield b"x" * 500

    response = requests.post(f"{worker.url}/worker_generate_stream", data=chunks(),
                             timeout=TIMEOUT_S)

    assert response.status_code == 413
    assert "more than 1000 bytes" in response.json()["detail"]


def test_a_body_under_the_cap_is_served(start_worker):
    worker = vision_worker(start_worker, max_body_bytes=1000)

    assert post_frames(worker.url, chat("Hi"))[-1]["error_code"] == 0


def test_limits_come_from_worker_environment_variables():
    settings = WorkerSettings.from_sources([], environ={
        "WORKER_MAX_BODY_BYTES": "1048576", "WORKER_MAX_MESSAGES": "20",
        "WORKER_MAX_PROMPT_CHARS": "5000", "WORKER_MAX_IMAGES": "4",
        "WORKER_MAX_IMAGE_BYTES": "65536", "WORKER_MAX_IMAGE_PIXELS": "1000000",
    })

    assert InputLimits.from_settings(settings) == InputLimits(20, 5000, 4, 65536, 1_000_000)
    assert settings.max_body_bytes == 1_048_576


def test_defaults_match_the_controllers():
    settings = WorkerSettings()

    assert (settings.max_body_bytes, settings.max_messages, settings.max_prompt_chars,
            settings.max_images, settings.max_image_bytes, settings.max_image_pixels) == (
        32 * 1024 * 1024, 200, 200_000, 16, 10 * 1024 * 1024, 40_000_000)


def test_a_zero_limit_is_a_settings_error():
    with pytest.raises(ValueError, match="max_images must be >= 1"):
        WorkerSettings(max_images=0)

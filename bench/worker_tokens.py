"""Tokens/s of the default model: llama-cpp-python directly, through the worker, and through
the controller, measured in one run with the paths interleaved.

    python bench/worker_tokens.py [--rounds 5] [--max-new-tokens 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

# Run from anywhere: the packages live at the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.server import BackgroundServer, free_port
from protocol.frames import iter_frames
from worker.api import create_app
from worker.backends.llama_cpp import DEFAULT_MODEL_NAME, LlamaCppBackend
from worker.settings import WorkerSettings

CONTEXT_SIZE = 2048
PROMPT = "Write a long story about a dragon who learns to bake bread."


def direct_run(llama: object, max_new_tokens: int) -> tuple[int, float]:
    """Tokens and seconds for one streamed chat completion called in-process."""
    start_s = time.perf_counter()
    tokens = 0
    for chunk in llama.create_chat_completion(  # type: ignore[attr-defined]
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        temperature=0.0,
        top_p=1.0,
        repeat_penalty=1.0,
        max_tokens=max_new_tokens,
    ):
        if chunk["choices"][0]["delta"].get("content"):
            tokens += 1
    return tokens, time.perf_counter() - start_s


def http_run(url: str, max_new_tokens: int) -> tuple[int, float]:
    """Tokens and seconds for one /worker_generate_stream answer read to the end."""
    body = {
        "model": DEFAULT_MODEL_NAME,
        "prompt": [{"role": "user", "content": PROMPT}],
        "temperature": 0.0,
        "top_p": 1.0,
        "repetition_penalty": 1.0,
        "max_new_tokens": max_new_tokens,
        "max_input_tiles": 1,
    }
    start_s = time.perf_counter()
    with requests.post(f"{url}/worker_generate_stream", json=body, stream=True, timeout=300) as r:
        frames = list(iter_frames(r.iter_content(chunk_size=None)))
    elapsed_s = time.perf_counter() - start_s
    last = frames[-1]
    if last["error_code"] != 0:
        raise RuntimeError(f"{url} answered with an error frame: {last['text']}")
    return last["usage"]["completion_tokens"], elapsed_s


def wait_for_model(controller_url: str, timeout_s: float = 30.0) -> None:
    """Block until the controller lists the default model."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        models = requests.post(f"{controller_url}/list_models", timeout=5).json()["models"]
        if DEFAULT_MODEL_NAME in models:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{DEFAULT_MODEL_NAME} did not appear at {controller_url}")


def main() -> int:
    """Run the benchmark and print tokens/s per path and the ratios to the direct call."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()

    direct = LlamaCppBackend(context_size=CONTEXT_SIZE)
    served = LlamaCppBackend(context_size=CONTEXT_SIZE)
    paths: dict[str, Callable[[], tuple[int, float]]] = {
        "llama-cpp-python direct": lambda: direct_run(direct.llama, args.max_new_tokens),
    }
    servers: list[BackgroundServer] = []
    controller_url = None
    try:
        from controller.api import create_app as create_controller_app
        from controller.settings import ControllerSettings
    except ImportError as exc:
        print(f"controller not importable ({exc}); measuring the worker only")
    else:
        port = free_port()
        settings = ControllerSettings(host="127.0.0.1", port=port)
        servers.append(BackgroundServer(create_controller_app(settings), "127.0.0.1", port).start())
        controller_url = servers[-1].url

    worker_port = free_port()
    worker_settings = WorkerSettings(
        host="127.0.0.1",
        port=worker_port,
        worker_address=f"http://127.0.0.1:{worker_port}",
        controller_address=controller_url or "http://127.0.0.1:1",
        no_register=controller_url is None,
        backend="llama-cpp",
    )
    worker = BackgroundServer(create_app(worker_settings, served), "127.0.0.1", worker_port)
    servers.append(worker.start())
    paths["through the worker"] = lambda: http_run(worker.url, args.max_new_tokens)
    if controller_url:
        wait_for_model(controller_url)
        paths["through controller + worker"] = lambda: http_run(controller_url, args.max_new_tokens)

    try:
        print(f"model {DEFAULT_MODEL_NAME}, {os.cpu_count()} cores, {args.rounds} rounds of "
              f"{args.max_new_tokens} new tokens (greedy), paths interleaved; warming up ...")
        for run in paths.values():
            run()
        rates: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, run in paths.items():
                tokens, elapsed_s = run()
                rates[name].append(tokens / elapsed_s)
        baseline = statistics.median(rates["llama-cpp-python direct"])
        print(f"{'path':30} {'median tok/s':>12} {'min':>7} {'max':>7} {'ratio':>6}")
        for name, values in rates.items():
            median = statistics.median(values)
            print(f"{name:30} {median:12.1f} {min(values):7.1f} {max(values):7.1f} "
                  f"{median / baseline:6.3f}")
    finally:
        for server in reversed(servers):
            server.stop()
        direct.close()
        served.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

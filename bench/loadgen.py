"""The load generator, a separate process (an aiohttp client) that prints one JSON line.

    python -m bench.loadgen streams --urls U1,U2 --streams 256 --frames 100 --gap-ms 20
    python -m bench.loadgen ttff --group ctl=U --group direct=U1,U2 --rounds 100
    python -m bench.loadgen http --url U/list_models --connections 32 --duration-s 5

Its own CPU seconds are reported so one can see whether it, not the server, is the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time

import aiohttp


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    return aiohttp.ClientSession(
        connector=connector, trust_env=False, timeout=aiohttp.ClientTimeout(total=None)
    )


def _stream_body(model: str, frames: int, gap_ms: float) -> bytes:
    return json.dumps({
        "model": model, "prompt": [{"role": "user", "content": "hello"}],
        "temperature": 0.7, "top_p": 1.0, "max_new_tokens": frames,
        "repetition_penalty": 1.0, "max_input_tiles": 1, "bench_gap_ms": gap_ms,
    }).encode()


class StreamResult:
    """What one stream delivered."""

    __slots__ = ("duration_s", "error", "first_frame_s", "frames")

    def __init__(self) -> None:
        self.frames = 0
        self.first_frame_s = 0.0
        self.duration_s = 0.0
        self.error = ""


async def one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, frames_expected: int,
    first_frame: asyncio.Event | None = None,
) -> StreamResult:
    """POST one generation and read it to the end, counting frames and errors."""
    result = StreamResult()
    start = time.perf_counter()
    tail = b""
    try:
        async with session.post(
            url + "/worker_generate_stream", data=body,
            headers={"Content-Type": "application/json"},
        ) as response:
            if response.status != 200:
                result.error = f"HTTP {response.status}"
                return result
            async for chunk in response.content.iter_any():
                count = chunk.count(b"\0")
                if count:
                    if not result.frames:
                        result.first_frame_s = time.perf_counter() - start
                        if first_frame is not None:
                            first_frame.set()
                    result.frames += count
                    tail = tail[-4096:] + chunk
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.duration_s = time.perf_counter() - start
    if not result.error:
        last = tail.rstrip(b"\0").rpartition(b"\0")[2]
        try:
            code = json.loads(last).get("error_code", 0)
        except ValueError:
            code = -1
        if code:
            result.error = f"error frame {last[:200]!r}"
        elif result.frames != frames_expected:
            result.error = f"{result.frames} frames, expected {frames_expected}"
    return result


async def run_streams(args: argparse.Namespace) -> dict[str, object]:
    urls = args.urls.split(",")
    models = args.models.split(",")
    cpu_start = time.process_time()
    async with _session() as session:
        targets = itertools.cycle(urls)
        events = [asyncio.Event() for _ in range(args.streams)]
        start = time.perf_counter()
        tasks = [
            asyncio.create_task(one_stream(
                session, next(targets), _stream_body(models[i % len(models)], args.frames,
                                                     args.gap_ms),
                args.frames, events[i],
            ))
            for i in range(args.streams)
        ]
        if args.announce_ready:
            waiting = asyncio.gather(*(e.wait() for e in events))
            await asyncio.wait(
                [asyncio.ensure_future(waiting), *tasks], return_when=asyncio.FIRST_COMPLETED
            )
            # "ready" means every stream is open and delivering (or failed: see errors).
            print("ready", flush=True)
        results = await asyncio.gather(*tasks)
        wall_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    errors = [r.error for r in results if r.error]
    frames = sum(r.frames for r in results)
    return {
        "streams": args.streams, "frames": frames, "errors": len(errors),
        "error_samples": errors[:3], "wall_s": wall_s, "frames_per_s": frames / wall_s,
        "duration_p50_s": percentile([r.duration_s for r in results], 0.5),
        "duration_p99_s": percentile([r.duration_s for r in results], 0.99),
        "first_frame_p50_s": percentile([r.first_frame_s for r in results], 0.5),
        "first_frame_p99_s": percentile([r.first_frame_s for r in results], 0.99),
        "loadgen_cpu_s": cpu_s,
    }


async def run_ttff(args: argparse.Namespace) -> dict[str, object]:
    """Sequential one-frame streams, alternating between the groups, so noise hits all alike."""
    groups = {}
    for spec in args.group:
        name, _, urls = spec.partition("=")
        groups[name] = itertools.cycle(urls.split(","))
    times: dict[str, list[float]] = {name: [] for name in groups}
    errors = 0
    body = _stream_body(args.models.split(",")[0], 1, 0)
    async with _session() as session:
        for _ in range(args.rounds):
            for name, urls in groups.items():
                result = await one_stream(session, next(urls), body, 1)
                errors += bool(result.error)
                times[name].append(result.first_frame_s)
    return {
        "errors": errors,
        **{f"{name}_p50_s": percentile(values, 0.5) for name, values in times.items()},
        **{f"{name}_p99_s": percentile(values, 0.99) for name, values in times.items()},
    }


async def run_http(args: argparse.Namespace) -> dict[str, object]:
    """POSTs on `connections` keep-alive connections for a fixed time.

    Closed loop (each connection sends again at once) unless `rate_per_s` paces the sends on
    a fixed schedule, so latency is measured below saturation, not as queueing.
    """
    bodies = [b.encode() for b in args.body] or [b""]
    latencies: list[float] = []
    errors = 0
    cpu_start = time.process_time()
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        deadline = time.perf_counter() + args.duration_s

        async def loop(offset: int) -> None:
            nonlocal errors
            period_s = args.connections / args.rate_per_s if args.rate_per_s else 0.0
            due = time.perf_counter() + offset * period_s / args.connections
            for i in itertools.count(offset):
                if period_s:
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    due += period_s
                if time.perf_counter() >= deadline:
                    return
                start = time.perf_counter()
                try:
                    async with session.post(
                        args.url, data=bodies[i % len(bodies)],
                        headers={"Content-Type": "application/json"},
                    ) as response:
                        await response.read()
                        errors += response.status != 200
                except (aiohttp.ClientError, OSError):
                    errors += 1
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(loop(i) for i in range(args.connections)))
        wall_s = time.perf_counter() - start
    return {
        "requests": len(latencies), "errors": errors, "requests_per_s": len(latencies) / wall_s,
        "p50_s": percentile(latencies, 0.5), "p99_s": percentile(latencies, 0.99),
        "loadgen_cpu_s": time.process_time() - cpu_start,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    streams = modes.add_parser("streams", help="concurrent streams, all started at once")
    streams.add_argument("--urls", required=True, help="comma-separated base URLs, round-robin")
    streams.add_argument("--models", default="bench")
    streams.add_argument("--streams", type=int, required=True)
    streams.add_argument("--frames", type=int, default=100)
    streams.add_argument("--gap-ms", type=float, default=20)
    streams.add_argument("--announce-ready", action="store_true",
                         help="print 'ready' once every stream has its first frame")
    ttff = modes.add_parser("ttff", help="time to first frame, sequential, groups alternating")
    ttff.add_argument("--group", action="append", required=True, help="name=URL[,URL...]")
    ttff.add_argument("--models", default="bench")
    ttff.add_argument("--rounds", type=int, default=100)
    http = modes.add_parser("http", help="plain POSTs in a closed loop (when wrk is missing)")
    http.add_argument("--url", required=True)
    http.add_argument("--body", action="append", default=[])
    http.add_argument("--connections", type=int, default=32)
    http.add_argument("--duration-s", type=float, default=5)
    http.add_argument("--rate-per-s", type=float, default=0,
                      help="total requests per second, paced (0: as fast as answered)")
    args = parser.parse_args(argv)
    runner = {"streams": run_streams, "ttff": run_ttff, "http": run_http}[args.mode]
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, only slower
        result = asyncio.run(runner(args))
    else:
        result = uvloop.run(runner(args))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

"""Run the benchmark suite and print one table: `python -m bench [--quick] [--only a,b]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.procs import ROOT, Procs, cpu_s, cpu_split_s, free_ports, post_json, rss_bytes, run_json

SECTIONS = ("dispatch", "redis", "proxy", "hung", "quality", "memory")
MB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is; --quick shrinks them to a smoke test."""

    dispatch_s: float = 4.0
    dispatch_rounds: int = 3
    paced_per_s: float = 1000
    big_workers: int = 1000
    big_models: int = 100
    proxy_processes: int = 4
    proxy_ports_each: int = 2
    cpu_streams: int = 128
    cpu_frames: int = 100
    cpu_gap_ms: float = 50
    ttff_rounds: int = 200
    load_streams: tuple[int, ...] = (256, 1000)
    load_frames: int = 100
    load_gap_ms: float = 20
    load_rounds: int = 3
    hung_workers: int = 10
    status_timeout_s: float = 5.0
    sim_jobs: int = 100_000
    mem_workers: int = 1000
    mem_models: int = 100
    mem_processes: int = 4
    mem_streams: int = 1000
    mem_frames: int = 10


QUICK = Sizes(
    dispatch_s=1.0, dispatch_rounds=1, paced_per_s=200, big_workers=100, big_models=10,
    proxy_processes=2, proxy_ports_each=1, cpu_streams=16, cpu_frames=20, cpu_gap_ms=20,
    ttff_rounds=20,
    load_streams=(32, 64), load_frames=20, load_gap_ms=10, load_rounds=1, hung_workers=3,
    status_timeout_s=1.0, sim_jobs=3000, mem_workers=50, mem_models=5, mem_processes=1,
    mem_streams=50, mem_frames=4,
)


@dataclass
class Row:
    """One line of the table."""

    section: str
    figure: str
    value: str
    compared: str = ""
    target: str = ""
    met: bool | None = None


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _mark(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "**no**")


# -- processes ---------------------------------------------------------------------------------


def start_controller(procs: Procs, *extra: str) -> tuple[str, int]:
    """A standalone controller on a free loopback port: (URL, pid)."""
    (port,) = free_ports(1)
    child = procs.start("controller", "--host", "127.0.0.1", "--port", str(port),
                        "--log-level", "warning", *extra)
    url = f"http://127.0.0.1:{port}"
    procs.wait_http(child, url + "/health")
    return url, child.pid


def start_workers(
    procs: Procs, processes: int, ports_each: int, models: list[str], hung: bool = False
) -> tuple[list[str], list[int]]:
    """Simulated workers on `processes` x `ports_each` ports: (URLs, process ids)."""
    ports = free_ports(processes * ports_each)
    urls, pids = [], []
    for i in range(processes):
        mine = ports[i * ports_each:(i + 1) * ports_each]
        # Model i of the fleet goes to port i, whichever process serves it.
        names = [models[(i * ports_each + j) % len(models)] for j in range(ports_each)]
        args = ["bench.fake_worker", "--ports", ",".join(map(str, mine)),
                "--models", ",".join(names)]
        pids.append(procs.start(*args, *(["--hung"] if hung else []), ready_line=True).pid)
        urls += [f"http://127.0.0.1:{p}" for p in mine]
    return urls, pids


def register(controller: str, urls: list[str], models: list[str]) -> None:
    """Register workers with a status given (the controller calls nobody) and no heartbeat."""
    for i, url in enumerate(urls):
        post_json(controller + "/register_worker", {
            "worker_name": url, "check_heart_beat": False,
            "worker_status": {"model_names": [models[i % len(models)]], "speed": 1,
                              "queue_length": 0},
        })


# -- plain requests: wrk or the Python client ---------------------------------------------------


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wrk_duration_ms(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def http_load(client: str, url: str, bodies: list[str], connections: int,
              duration_s: float, rate_per_s: float = 0) -> dict[str, float]:
    """req/s, p50/p99 (s), errors and the generator's CPU s for POSTs to `url`."""
    if client == "python" or rate_per_s:
        args = ["bench.loadgen", "http", "--url", url, "--connections", str(connections),
                "--duration-s", str(duration_s), "--rate-per-s", str(rate_per_s)]
        for body in bodies:
            args += ["--body", body]
        return run_json(*args)
    lua = "\n".join([
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
        "local bodies = {" + ", ".join(json.dumps(b) for b in bodies) + "}",
        "local i = 0",
        "request = function()",
        "  i = i + 1",
        "  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])",
        "end",
    ])
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        before = _children_cpu_s()
        done = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--latency",
             "-s", script.name, url],
            capture_output=True, text=True, timeout=duration_s + 60, check=True,
        )
        used = _children_cpu_s() - before
    finally:
        os.unlink(script.name)
    result = {"loadgen_cpu_s": used, "errors": 0}
    for line in done.stdout.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            result["requests_per_s"] = float(words[1])
        elif words[:1] == ["50%"]:
            result["p50_s"] = _wrk_duration_ms(words[1]) / 1000
        elif words[:1] == ["99%"]:
            result["p99_s"] = _wrk_duration_ms(words[1]) / 1000
        elif line.strip().startswith("Non-2xx"):
            result["errors"] += int(words[-1])
        elif line.strip().startswith("Socket errors"):
            result["errors"] += sum(int(w.strip(",")) for w in words if w.strip(",").isdigit())
    return result


# -- sections ----------------------------------------------------------------------------------


def bench_dispatch(sizes: Sizes, client: str) -> list[Row]:
    """/get_worker_address and /list_models next to a bare FastAPI endpoint, interleaved."""
    rows: list[Row] = []
    big_models = [f"model-{i:03d}" for i in range(sizes.big_models)]
    with Procs() as procs:
        (bare_port,) = free_ports(1)
        bare = f"http://127.0.0.1:{bare_port}"
        procs.wait_http(procs.start("bench.bare_app", "--port", str(bare_port)), bare + "/docs")
        small, _ = start_controller(procs)
        big, _ = start_controller(procs)
        # Addresses need not answer: dispatch never calls a worker.
        fake = [f"http://127.0.0.1:{p}" for p in range(30001, 30001 + sizes.big_workers)]
        register(small, fake[:8], ["bench"])
        register(big, fake, big_models)
        one = [json.dumps({"model": "bench"})]
        many = [json.dumps({"model": m}) for m in big_models]
        # (figure, [(label, url, bodies)]): the first of each group is the reference.
        groups = [
            ("/get_worker_address, 8 workers",
             [("bare", bare + "/get_worker_address", one),
              ("controller", small + "/get_worker_address", one)]),
            (f"/get_worker_address, {sizes.big_workers} workers / {sizes.big_models} models",
             [("bare", bare + "/get_worker_address", many),
              ("controller", big + "/get_worker_address", many)]),
            ("/list_models, 8 workers (1 model)",
             [("bare", bare + "/list_models_one", []),
              ("controller", small + "/list_models", [])]),
            (f"/list_models, {sizes.big_workers} workers / {sizes.big_models} models",
             [("bare", bare + "/list_models", []),
              ("controller", big + "/list_models", [])]),
        ]
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        paced: dict[str, list[dict[str, float]]] = {"bare": [], "controller": []}
        for round_no in range(sizes.dispatch_rounds):
            for figure, targets in groups:
                # Alternate which side goes first, so a drift in machine load hits both.
                ordered = targets if round_no % 2 == 0 else targets[::-1]
                for label, url, bodies in ordered:
                    runs.setdefault((figure, label), []).append(
                        http_load(client, url, bodies or ["{}"], 32, sizes.dispatch_s))
            # Below saturation: latency without the queueing 32 closed loops cause.
            for label, url, bodies in groups[1][1]:
                paced[label].append(http_load("python", url, bodies, 32, sizes.dispatch_s,
                                              rate_per_s=sizes.paced_per_s))
    errors = 0
    for figure, _ in groups:
        ctl, ref = runs[figure, "controller"], runs[figure, "bare"]
        errors += sum(r["errors"] for r in ctl + ref)
        ratio = _median([c["requests_per_s"] / b["requests_per_s"] for c, b in zip(ctl, ref,
                                                                                   strict=True)])
        rows.append(Row(
            "dispatch", f"{figure}: req/s (ratio to bare)",
            f"{_median([r['requests_per_s'] for r in ctl]):,.0f} ({ratio:.2f})",
            f"bare {_median([r['requests_per_s'] for r in ref]):,.0f}", ">= 0.95 of bare",
            ratio >= 0.95,
        ))
        p99 = _median([r["p99_s"] for r in ctl])
        big_one = str(sizes.big_workers) in figure
        rows.append(Row(
            "dispatch", f"{figure}: p50 / p99 ms",
            f"{_ms(_median([r['p50_s'] for r in ctl]))} / {_ms(p99)}",
            f"bare {_ms(_median([r['p50_s'] for r in ref]))} / "
            f"{_ms(_median([r['p99_s'] for r in ref]))}",
            "p99 < 10 ms" if big_one else "", (p99 < 0.010) if big_one else None,
        ))
    p99 = _median([r["p99_s"] for r in paced["controller"]])
    rows.append(Row(
        "dispatch", f"/get_worker_address, {sizes.big_workers} workers, paced "
        f"{sizes.paced_per_s:g} req/s: p50 / p99 ms",
        f"{_ms(_median([r['p50_s'] for r in paced['controller']]))} / {_ms(p99)}",
        f"bare {_ms(_median([r['p50_s'] for r in paced['bare']]))} / "
        f"{_ms(_median([r['p99_s'] for r in paced['bare']]))} (Python client, 32 connections)",
        "p99 < 10 ms", p99 < 0.010,
    ))
    errors += sum(r["errors"] for rs in paced.values() for r in rs)
    gen_cpu = _median([r["loadgen_cpu_s"] / sizes.dispatch_s for rs in runs.values() for r in rs])
    rows.append(Row("dispatch", "load generator CPU (cores busy)", f"{gen_cpu:.2f}",
                    f"{client}, 32 connections, {sizes.dispatch_rounds} rounds interleaved"))
    rows.append(Row("dispatch", "errors", str(errors), "", "0", errors == 0))
    return rows


def start_redis(procs: Procs) -> str | None:
    """A throwaway redis-server on a free loopback port (no persistence); None if missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    (port,) = free_ports(1)
    child = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    child.log = open(os.devnull, "w")  # noqa: SIM115 - Procs.stop closes it
    procs.children.append(child)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as probe:
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)  # polling a process we do not control
    raise RuntimeError("redis-server did not start")


def bench_redis(sizes: Sizes, client: str) -> list[Row]:
    """Dispatch with the shared Redis registry next to the in-memory one, interleaved."""
    with Procs() as procs:
        redis_url = start_redis(procs)
        if redis_url is None:
            return [Row("redis", "dispatch with the Redis registry", "skipped",
                        "redis-server is not installed (Debian: apt-get install redis-server)")]
        memory, _ = start_controller(procs)
        shared, _ = start_controller(procs, "--registry-url", redis_url)
        big_models = [f"model-{i:03d}" for i in range(sizes.big_models)]
        fake = [f"http://127.0.0.1:{p}" for p in range(30001, 30001 + sizes.big_workers)]
        for url in (memory, shared):
            register(url, fake, big_models)
        deadline = time.monotonic() + 10
        while post_json(shared + "/list_models")["models"] != sorted(big_models):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis-backed controller never saw its workers")
            time.sleep(0.05)  # the replica syncs every 0.1 s
        bodies = [json.dumps({"model": m}) for m in big_models]
        runs: dict[str, list[dict[str, float]]] = {"memory": [], "redis": []}
        for round_no in range(sizes.dispatch_rounds):
            order = (("memory", memory), ("redis", shared))
            for label, url in order if round_no % 2 == 0 else order[::-1]:
                runs[label].append(http_load(client, url + "/get_worker_address", bodies, 32,
                                             sizes.dispatch_s))
    ratio = _median([r["requests_per_s"] / m["requests_per_s"]
                     for r, m in zip(runs["redis"], runs["memory"], strict=True)])
    errors = sum(r["errors"] for rs in runs.values() for r in rs)
    redis_runs, memory_runs = runs["redis"], runs["memory"]
    return [
        Row("redis", f"/get_worker_address, {sizes.big_workers} workers, Redis registry: "
            "req/s (ratio to in-memory)",
            f"{_median([r['requests_per_s'] for r in redis_runs]):,.0f} ({ratio:.2f})",
            f"in-memory {_median([r['requests_per_s'] for r in memory_runs]):,.0f}",
            ">= 0.7 of in-memory", ratio >= 0.7),
        Row("redis", "Redis registry: p50 / p99 ms",
            f"{_ms(_median([r['p50_s'] for r in redis_runs]))} / "
            f"{_ms(_median([r['p99_s'] for r in redis_runs]))}",
            f"in-memory {_ms(_median([r['p50_s'] for r in memory_runs]))} / "
            f"{_ms(_median([r['p99_s'] for r in memory_runs]))}"),
        Row("redis", "errors", str(errors), "", "0", errors == 0),
    ]


def _streams(urls: list[str], streams: int, frames: int, gap_ms: float) -> dict:
    return run_json("bench.loadgen", "streams", "--urls", ",".join(urls), "--streams",
                    str(streams), "--frames", str(frames), "--gap-ms", str(gap_ms))


def bench_proxy(sizes: Sizes) -> list[Row]:
    """Controller CPU per frame, time to first frame, and throughput against direct."""
    rows: list[Row] = []
    errors = 0
    with Procs() as procs:
        workers, worker_pids = start_workers(procs, sizes.proxy_processes,
                                             sizes.proxy_ports_each, ["bench"])
        ctl, ctl_pid = start_controller(procs)
        register(ctl, workers, ["bench"])
        _streams([ctl], 8, 5, 0)  # warm the connection pool and code paths

        per_1000: list[tuple[float, float]] = []
        workers_per_1000: list[float] = []
        gen_share: list[float] = []
        for _ in range(2 if sizes.load_rounds > 1 else 1):
            before = cpu_split_s(ctl_pid)
            workers_before = sum(cpu_s(pid) for pid in worker_pids)
            result = _streams([ctl], sizes.cpu_streams, sizes.cpu_frames, sizes.cpu_gap_ms)
            after = cpu_split_s(ctl_pid)
            frames_k = max(result["frames"], 1) / 1000
            workers_per_1000.append(
                (sum(cpu_s(pid) for pid in worker_pids) - workers_before) / frames_k)
            errors += result["errors"]
            per_1000.append(((after[0] - before[0]) / frames_k, (after[1] - before[1]) / frames_k))
            gen_share.append(result["loadgen_cpu_s"] / result["wall_s"])
        cpu_ms = _median([u + s for u, s in per_1000]) * 1000
        rows.append(Row(
            "proxy", f"controller CPU per 1,000 frames ({sizes.cpu_streams} streams x "
            f"{sizes.cpu_frames} frames, {sizes.cpu_gap_ms:g} ms apart)", f"{cpu_ms:.1f} ms",
            f"user {_median([u for u, _ in per_1000]) * 1000:.0f} + system "
            f"{_median([s for _, s in per_1000]) * 1000:.0f}; predecessor 309",
            "<= 40 ms", cpu_ms <= 40,
        ))
        rows.append(Row(
            "proxy", "same run: simulated workers' CPU per 1,000 frames (one write each)",
            f"{_median(workers_per_1000) * 1000:.1f} ms",
            f"load generator {_median(gen_share):.2f} cores busy",
        ))

        ttff = run_json("bench.loadgen", "ttff", "--group", f"controller={ctl}", "--group",
                        "direct=" + ",".join(workers), "--rounds", str(sizes.ttff_rounds))
        errors += ttff["errors"]
        rows.append(Row(
            "proxy", "time to first frame p50 / p99 ms (sequential, alternating)",
            f"{_ms(ttff['controller_p50_s'])} / {_ms(ttff['controller_p99_s'])}",
            f"direct {_ms(ttff['direct_p50_s'])} / {_ms(ttff['direct_p99_s'])}",
        ))

        for streams in sizes.load_streams:
            runs: dict[str, list[dict]] = {"direct": [], "controller": []}
            ctl_cpu: list[float] = []
            for round_no in range(sizes.load_rounds):
                order = ("direct", "controller") if round_no % 2 == 0 else ("controller",
                                                                             "direct")
                for mode in order:
                    before = cpu_s(ctl_pid)
                    result = _streams(workers if mode == "direct" else [ctl], streams,
                                      sizes.load_frames, sizes.load_gap_ms)
                    if mode == "controller":
                        ctl_cpu.append((cpu_s(ctl_pid) - before) / result["wall_s"])
                    runs[mode].append(result)
                    errors += result["errors"]
            direct, via = runs["direct"], runs["controller"]
            ratio = _median([c["frames_per_s"] / d["frames_per_s"]
                             for c, d in zip(via, direct, strict=True)])
            check_ratio = streams == sizes.load_streams[0]
            rows.append(Row(
                "proxy", f"{streams} streams x {sizes.load_frames} frames, "
                f"{sizes.load_gap_ms:g} ms apart: frames/s (ratio to direct)",
                f"{_median([r['frames_per_s'] for r in via]):,.0f} ({ratio:.2f})",
                f"direct {_median([r['frames_per_s'] for r in direct]):,.0f}",
                ">= 0.9 of direct" if check_ratio else "", (ratio >= 0.9) if check_ratio
                else None,
            ))
            stream_errors = sum(r["errors"] for r in via + direct)
            ideal_s = (sizes.load_frames - 1) * sizes.load_gap_ms / 1000
            rows.append(Row(
                "proxy", f"{streams} streams: p99 stream duration s (ideal {ideal_s:.2f})",
                f"{_median([r['duration_p99_s'] for r in via]):.2f}",
                f"direct {_median([r['duration_p99_s'] for r in direct]):.2f}",
            ))
            rows.append(Row(
                "proxy", f"{streams} streams: CPU cores busy, controller / load generator",
                f"{_median(ctl_cpu):.2f} / "
                f"{_median([r['loadgen_cpu_s'] / r['wall_s'] for r in via]):.2f}",
                "direct: load generator "
                f"{_median([r['loadgen_cpu_s'] / r['wall_s'] for r in direct]):.2f}",
            ))
            rows.append(Row("proxy", f"{streams} streams: errors", str(stream_errors),
                            (lambda s: f"e.g. {s[0]}" if s else "")(
                                [e for r in via + direct for e in r["error_samples"]]),
                            "0", stream_errors == 0))
    rows.append(Row("proxy", "errors", str(errors), "all proxy runs", "0", errors == 0))
    return rows


async def _probe(url: str, until: Callable[[], bool], concurrency: int = 4) -> tuple[list, int]:
    """/list_models latencies (s) from `concurrency` closed loops until `until()`."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(trust_env=False) as session:

        async def loop() -> None:
            nonlocal errors
            while not until():
                start = time.perf_counter()
                try:
                    async with session.post(url, timeout=aiohttp.ClientTimeout(total=60)) as r:
                        await r.read()
                        errors += r.status != 200
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(0.005)  # a paced client, not a flood: we look for stalls

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies, errors


async def _during_refresh(ctl: str) -> tuple[list, int, float, dict]:
    import aiohttp

    done = False
    async with aiohttp.ClientSession(trust_env=False) as session:

        async def refresh() -> tuple[float, dict]:
            nonlocal done
            start = time.perf_counter()
            try:
                async with session.post(ctl + "/refresh_all_workers",
                                        timeout=aiohttp.ClientTimeout(total=120)) as r:
                    return time.perf_counter() - start, await r.json()
            finally:
                done = True

        (latencies, errors), (duration_s, answer) = await asyncio.gather(
            _probe(ctl + "/list_models", lambda: done), refresh())
    return latencies, errors, duration_s, answer


def bench_hung(sizes: Sizes) -> list[Row]:
    """/list_models while a refresh waits on hung workers, and the refresh's duration."""
    with Procs() as procs:
        hung, _ = start_workers(procs, 1, sizes.hung_workers, ["hung"], hung=True)
        good, _ = start_workers(procs, 1, 2, ["bench"])
        ctl, _ = start_controller(procs, "--status-timeout", str(sizes.status_timeout_s))
        register(ctl, hung, ["hung"])
        register(ctl, good, ["bench"])
        quiet_until = time.monotonic() + min(sizes.status_timeout_s, 2.0)
        base, base_errors = asyncio.run(_probe(ctl + "/list_models",
                                               lambda: time.monotonic() > quiet_until))
        during, errors, duration_s, answer = asyncio.run(_during_refresh(ctl))
    removed = len(answer.get("removed", []))
    p99 = _median([]) if not during else sorted(during)[int(0.99 * (len(during) - 1))]
    p50 = statistics.median(during) if during else 0.0
    b50 = statistics.median(base) if base else 0.0
    b99 = sorted(base)[int(0.99 * (len(base) - 1))] if base else 0.0
    limit_s = sizes.status_timeout_s * 1.1
    return [
        Row("hung", f"/list_models p50 / p99 ms during refresh ({sizes.hung_workers} hung, "
            f"{len(during)} requests)", f"{_ms(p50)} / {_ms(p99)}",
            f"no refresh {_ms(b50)} / {_ms(b99)}", "p99 < 50 ms", p99 < 0.050),
        Row("hung", f"refresh duration s (status timeout {sizes.status_timeout_s:g} s)",
            f"{duration_s:.2f}", f"removed {removed} of {sizes.hung_workers} hung",
            f"<= {limit_s:.2f} s, all removed",
            duration_s <= limit_s and removed == sizes.hung_workers),
        Row("hung", "errors", str(errors + base_errors), "", "0", errors + base_errors == 0),
    ]


def bench_quality(sizes: Sizes, chart: Path | None) -> tuple[list[Row], list]:
    """Mean and p99 completion time per policy in the simulation; chart optional."""
    from bench.sim import run_all

    results = run_all(sizes.sim_jobs)
    rows = []
    for load in sorted({r.load for r in results}):
        at_load = [r for r in results if r.load == load]
        best = min(r.p99_s for r in at_load)
        for r in at_load:
            is_target = r.policy == "shortest_queue" and load == 0.9
            candidate = "" if r.policy in ("lottery", "shortest_queue") else " (bench candidate)"
            rows.append(Row(
                "quality", f"{load:.0%} load, {r.policy}{candidate}: mean / p99 s",
                f"{r.mean_s:.2f} / {r.p99_s:.2f}", f"p99 {r.p99_s / best:.2f}x best",
                "p99 <= 1.25x best" if is_target else "",
                (r.p99_s <= 1.25 * best) if is_target else None,
            ))
    if chart is not None:
        from bench.chart import write_chart

        path = write_chart(results, chart)
        rows.append(Row("quality", "chart", str(path.relative_to(ROOT) if path.is_relative_to(
            ROOT) else path), f"{sizes.sim_jobs:,} requests per policy and load, FIFO M/M/1"))
    return rows, results


def bench_memory(sizes: Sizes) -> list[Row]:
    """Controller RSS with many workers registered and many streams held open."""
    models = [f"model-{i:03d}" for i in range(sizes.mem_models)]
    with Procs() as procs:
        per_process = -(-sizes.mem_workers // sizes.mem_processes)
        workers, _ = start_workers(procs, sizes.mem_processes, per_process, models)
        workers = workers[: sizes.mem_workers]
        ctl, pid = start_controller(procs)
        idle = rss_bytes(pid)
        register(ctl, workers, models)
        registered = rss_bytes(pid)
        gen = procs.start(
            "bench.loadgen", "streams", "--urls", ctl, "--models", ",".join(models),
            "--streams", str(sizes.mem_streams), "--frames", str(sizes.mem_frames),
            "--gap-ms", "1000", "--announce-ready", ready_line=True,
        )
        peak = 0
        for _ in range(8):  # streams send a frame a second: sample across two of them
            peak = max(peak, rss_bytes(pid))
            time.sleep(0.25)
        out, _ = gen.communicate(timeout=sizes.mem_frames + 120)
        result = json.loads(out.strip().splitlines()[-1])
    return [
        Row("memory", f"controller RSS MB, {sizes.mem_workers} workers + {sizes.mem_streams} "
            "open streams", f"{peak / MB:.0f}",
            f"idle {idle / MB:.0f}, workers registered {registered / MB:.0f}", "< 300 MB",
            peak < 300 * MB),
        Row("memory", "errors", str(result["errors"]),
            f"{result['frames']:,} frames delivered", "0", result["errors"] == 0),
    ]


# -- the table -----------------------------------------------------------------------------------


def format_table(rows: list[Row]) -> str:
    """A Markdown table (readable in a terminal, pasteable into docs/benchmarks.md)."""
    header = ("section", "figure", "value", "compared with", "target", "met")
    lines = [header] + [(r.section, r.figure, r.value, r.compared, r.target, _mark(r.met))
                        for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def fmt(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *map(fmt, lines[1:])])


def machine_line() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} now")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--http-client", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator for plain requests (auto: wrk when installed)")
    parser.add_argument("--chart", type=Path, help="file stem for the dispatch-quality chart "
                        "(default docs/dispatch_quality for a full run, none with --quick)")
    parser.add_argument("--json", type=Path, help="also write rows and results as JSON here")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    sizes = QUICK if args.quick else Sizes()
    client = args.http_client
    if client in ("auto", "wrk") and shutil.which("wrk") is None:
        if client == "wrk":
            parser.error("wrk is not installed (Debian: apt-get install wrk)")
        print("note: wrk is not installed (Debian: apt-get install wrk); plain-request figures "
              "use the Python client, whose own ceiling may limit them", file=sys.stderr)
        client = "python"
    elif client == "auto":
        client = "wrk"
    chart = args.chart or (None if args.quick else ROOT / "docs" / "dispatch_quality")
    started = time.monotonic()
    print(f"# python -m bench{' --quick' if args.quick else ''}: {machine_line()}",
          file=sys.stderr)
    rows: list[Row] = []
    sim_results: list = []
    for section in SECTIONS:
        if section not in only:
            continue
        print(f"running {section} ...", file=sys.stderr, flush=True)
        if section == "dispatch":
            rows += bench_dispatch(sizes, client)
        elif section == "redis":
            rows += bench_redis(sizes, client)
        elif section == "proxy":
            rows += bench_proxy(sizes)
        elif section == "hung":
            rows += bench_hung(sizes)
        elif section == "quality":
            quality_rows, sim_results = bench_quality(sizes, chart)
            rows += quality_rows
        else:
            rows += bench_memory(sizes)
    print(format_table(rows))
    missed = [r for r in rows if r.met is False]
    print(f"\n{sum(r.met is True for r in rows)} targets met, {len(missed)} missed; "
          f"{time.monotonic() - started:.0f} s; {machine_line()}")
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(r) for r in rows],
                                         "simulation": [asdict(r) for r in sim_results]},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

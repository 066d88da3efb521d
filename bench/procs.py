"""Child processes of the suite: start on loopback ports, wait until they answer, measure, stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def free_ports(count: int) -> list[int]:
    """Ports the OS says are free now, all bound at once so none repeats."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def cpu_split_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far (/proc/<pid>/stat utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    return sum(cpu_split_s(pid))


def rss_bytes(pid: int) -> int:
    """Resident set size of a process now (/proc/<pid>/statm)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_BYTES


def post_json(url: str, payload: object | None = None, timeout_s: float = 30) -> dict:
    """One blocking JSON POST (set-up only, never measured)."""
    data = json.dumps(payload if payload is not None else {}).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def stderr_of(child: subprocess.Popen) -> str:
    """The last lines a child wrote to stderr."""
    log = child.log  # type: ignore[attr-defined]
    log.seek(0)
    return log.read()[-2000:]


class Procs:
    """Every child process of a run, all stopped at the end (context manager)."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen] = []

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()

    def start(self, *args: str, ready_line: bool = False) -> subprocess.Popen:
        """Start `python -m <args>` from the repository root; wait for 'ready' if asked."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)
        # stderr goes to a file: a pipe nobody reads would block a chatty child.
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed with the process
        child = subprocess.Popen(
            [sys.executable, "-m", *args], cwd=ROOT, env=env,
            stdout=subprocess.PIPE if ready_line else subprocess.DEVNULL,
            stderr=log, text=True,
        )
        child.log = log  # type: ignore[attr-defined]
        self.children.append(child)
        if ready_line:
            line = child.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"{' '.join(args)} did not start: {stderr_of(child)}")
        return child

    def wait_http(self, child: subprocess.Popen, url: str, timeout_s: float = 30) -> None:
        """Poll `url` (GET) until it answers; fail with the child's stderr if it died."""
        deadline = time.monotonic() + timeout_s
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise RuntimeError(f"{url}: process exited: {stderr_of(child)}")
            try:
                with opener.open(url, timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer within {timeout_s} s")

    def stop(self, child: subprocess.Popen) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        child.log.close()  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for child in reversed(self.children):
            self.stop(child)
        self.children.clear()


def run_json(*args: str, timeout_s: float = 600) -> dict:
    """Run `python -m <args>` to the end and return the JSON of its last stdout line."""
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout_s, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])

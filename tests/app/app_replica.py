"""One app replica's boot in a process of its own (the boot runs once per process), for tests.

Run: `python -m tests.app.app_replica <app options>`; prints `booted <controller URL>`, stops
its controller and workers on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading

from webui import boot


def main() -> None:
    runtime = boot.ensure_started(sys.argv[1:])
    for notice in runtime.notices:
        print(f"{notice.level}: {notice.text}", flush=True)
    print(f"booted {runtime.controller_url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # A timed wait: the handler only runs between bytecodes of the main thread.
    while not stop.wait(0.2):
        pass
    runtime.stop()


if __name__ == "__main__":
    main()

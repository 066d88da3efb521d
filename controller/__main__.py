"""Standalone controller: `python -m controller --port 10075 --dispatch-method shortest_queue`."""

from __future__ import annotations

import logging
import sys

import uvicorn

from controller.api import create_app
from controller.server import port_is_free
from controller.settings import ControllerSettings


def main(argv: list[str] | None = None) -> int:
    settings = ControllerSettings.from_args(argv)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not port_is_free(settings.host, settings.port):
        print(
            f"error: port {settings.port} on {settings.host} is already in use "
            "(another controller?); choose one with --port or CONTROLLER_PORT",
            file=sys.stderr,
        )
        return 2
    logging.getLogger("controller").info(
        "controller on %s:%d, dispatch %s, heartbeat expiry %gs",
        settings.host, settings.port, settings.dispatch_method, settings.heart_beat_expiration_s,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # One log line per request costs more CPU than dispatching it; keep it for debugging.
        access_log=settings.log_level == "debug",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m worker`: load the backend, serve the worker protocol, register with the controller."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import uvicorn

from worker.api import create_app
from worker.backends import create_backend
from worker.backends.base import BackendError
from worker.settings import WorkerSettings

logger = logging.getLogger("worker")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a worker until interrupted; return the process exit status."""
    settings = WorkerSettings.from_sources(argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        backend = create_backend(settings)
    except BackendError as exc:
        logger.error("%s", exc)
        return 2
    logger.info(
        "serving %s (%s backend) on %s:%d as %s; controller %s",
        backend.model_name, settings.backend, settings.host, settings.port,
        settings.worker_address,
        "disabled" if settings.no_register else settings.controller_address,
    )
    app = create_app(settings, backend)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    finally:
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

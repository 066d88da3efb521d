"""Domain errors of the controller core; api.py turns them into HTTP answers in one place."""

from __future__ import annotations


class ControllerError(Exception):
    """Base of the errors a client can cause or needs to hear about."""

    status_code = 400


class InvalidWorkerAddress(ControllerError):
    """A worker_name that is not an http(s)://host[:port][/path] URL."""

    status_code = 422


class AddressNotAllowed(ControllerError):
    """A worker address or registering client outside the configured allowlist."""

    status_code = 403


class InvalidWorkerStatus(ControllerError):
    """A worker status with missing or impossible values (speed <= 0, negative queue...)."""

    status_code = 422


class WorkerUnreachable(ControllerError):
    """The controller could not get a worker's status while registering it."""

    status_code = 422


class NoWorkerForModel(ControllerError):
    """No live worker serves the requested model."""

    status_code = 404

    def __init__(self, model: str) -> None:
        super().__init__(f"no worker serves model {model!r}")
        self.model = model


class UnknownDispatchMethod(ControllerError):
    """A dispatch method name that is not implemented."""

    status_code = 422


class PayloadTooLarge(ControllerError):
    """A request body over the configured size limit."""

    status_code = 413


class InvalidPrompt(ControllerError):
    """A generation request over a prompt limit (messages, text, images, pixels)."""

    status_code = 422

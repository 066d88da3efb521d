"""Typed controller settings, read from CLI flags with environment-variable defaults."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DISPATCH_METHODS = ("lottery", "shortest_queue")


class SettingsError(ValueError):
    """A setting has a value that cannot work; the message names the setting."""


@dataclass(frozen=True)
class ControllerSettings:
    """Everything the controller needs to run; one instance per controller."""

    host: str = "0.0.0.0"
    port: int = 10075
    dispatch_method: str = "shortest_queue"
    # A worker registered with check_heart_beat is forgotten this long after its last beat.
    # 30 s matches the InternVL/LLaVA workers (they beat every 15 s); FastChat workers need 90.
    heart_beat_expiration_s: float = 30.0
    sweep_interval_s: float = 3.0
    # Status calls (/worker_get_status) to one worker; refresh runs them all concurrently.
    status_timeout_s: float = 5.0
    # Streaming proxy: a large model can take a minute before its first token.
    connect_timeout_s: float = 5.0
    first_frame_timeout_s: float = 120.0
    idle_timeout_s: float = 60.0
    # How many workers a stream tries before it gives up (failover before the first frame).
    max_attempts: int = 3
    parent_controller: str | None = None
    # Address the parent should use to reach this controller (defaults to http://host:port).
    advertise_address: str | None = None
    parent_heart_beat_interval_s: float = 15.0
    stats_interval_s: float = 5.0
    stats_window_s: float = 900.0
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.dispatch_method not in DISPATCH_METHODS:
            raise SettingsError(
                f"dispatch_method must be one of {', '.join(DISPATCH_METHODS)}, "
                f"not {self.dispatch_method!r}"
            )
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be in 1..65535, not {self.port}")
        for name in (
            "heart_beat_expiration_s",
            "sweep_interval_s",
            "status_timeout_s",
            "connect_timeout_s",
            "first_frame_timeout_s",
            "idle_timeout_s",
            "parent_heart_beat_interval_s",
            "stats_interval_s",
            "stats_window_s",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be > 0, not {getattr(self, name)}")
        if self.max_attempts < 1:
            raise SettingsError(f"max_attempts must be >= 1, not {self.max_attempts}")

    @property
    def local_url(self) -> str:
        """URL a client on this machine uses to reach this controller."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def replace(self, **changes: object) -> ControllerSettings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ControllerSettings:
        """Settings from CONTROLLER_* variables only (no CLI)."""
        return cls.from_args([], environ)

    @classmethod
    def from_args(
        cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> ControllerSettings:
        """Parse CLI flags; every flag defaults to its CONTROLLER_* variable, then the default."""
        parser = build_parser(environ if environ is not None else os.environ)
        args = parser.parse_args(argv)
        values = {opt.dest: getattr(args, opt.dest) for opt in _OPTIONS}
        try:
            return cls(**values)
        except SettingsError as exc:
            parser.error(str(exc))
            raise  # unreachable: parser.error exits


@dataclass(frozen=True)
class _Option:
    flag: str
    dest: str
    env: str
    type: type
    help: str


_OPTIONS = (
    _Option("--host", "host", "CONTROLLER_HOST", str, "address to listen on"),
    _Option("--port", "port", "CONTROLLER_PORT", int, "port to listen on"),
    _Option(
        "--dispatch-method", "dispatch_method", "CONTROLLER_DISPATCH_METHOD", str,
        "how a worker is chosen: " + " or ".join(DISPATCH_METHODS),
    ),
    _Option(
        "--heart-beat-expiration", "heart_beat_expiration_s",
        "CONTROLLER_HEART_BEAT_EXPIRATION", float,
        "seconds without a heartbeat after which a worker is removed (FastChat workers: 90)",
    ),
    _Option(
        "--sweep-interval", "sweep_interval_s", "CONTROLLER_SWEEP_INTERVAL", float,
        "seconds between two sweeps for expired workers",
    ),
    _Option(
        "--status-timeout", "status_timeout_s", "CONTROLLER_STATUS_TIMEOUT", float,
        "seconds to wait for one worker's /worker_get_status",
    ),
    _Option(
        "--connect-timeout", "connect_timeout_s", "CONTROLLER_CONNECT_TIMEOUT", float,
        "seconds to connect to a worker when proxying a stream",
    ),
    _Option(
        "--first-frame-timeout", "first_frame_timeout_s", "CONTROLLER_FIRST_FRAME_TIMEOUT",
        float, "seconds to wait for a worker's first frame before failing over",
    ),
    _Option(
        "--idle-timeout", "idle_timeout_s", "CONTROLLER_IDLE_TIMEOUT", float,
        "longest gap in seconds between two frames of a stream",
    ),
    _Option(
        "--max-attempts", "max_attempts", "CONTROLLER_MAX_ATTEMPTS", int,
        "workers one stream may try before the first frame (failover)",
    ),
    _Option(
        "--parent-controller", "parent_controller", "CONTROLLER_PARENT_CONTROLLER", str,
        "URL of a parent controller to register with as a worker",
    ),
    _Option(
        "--advertise-address", "advertise_address", "CONTROLLER_ADVERTISE_ADDRESS", str,
        "URL the parent controller uses to reach this one",
    ),
    _Option(
        "--stats-interval", "stats_interval_s", "CONTROLLER_STATS_INTERVAL", float,
        "seconds per point of the /stats time series",
    ),
    _Option(
        "--log-level", "log_level", "CONTROLLER_LOG_LEVEL", str,
        "uvicorn log level (debug, info, warning, error)",
    ),
)


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The standalone controller's argument parser, defaults taken from `environ`."""
    defaults = ControllerSettings()
    parser = argparse.ArgumentParser(
        prog="python -m controller",
        description="Worker controller for vision-language chat models (LLaVA/FastChat/"
        "InternVL wire protocol). Every flag can also be set by the environment variable shown.",
    )
    for opt in _OPTIONS:
        raw = environ.get(opt.env)
        default = getattr(defaults, opt.dest)
        if raw not in (None, ""):
            try:
                default = opt.type(raw)
            except ValueError:
                parser.error(f"{opt.env}={raw!r} is not a valid {opt.type.__name__}")
        parser.add_argument(
            opt.flag, dest=opt.dest, type=opt.type, default=default,
            help=f"{opt.help} (env {opt.env}; default {default})",
        )
    return parser

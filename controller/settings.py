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
    # Security (all optional; without tokens, registration is open and the log says so).
    worker_token: str | None = None
    admin_token: str | None = None
    # Comma-separated networks (CIDR) and host names (exact or *.domain) workers may register
    # from and point to; empty: any.
    worker_allowlist: str | None = None
    # Input limits: a request body, and the prompt of one generation request.
    max_body_bytes: int = 32 * 1024 * 1024
    max_messages: int = 200
    max_prompt_chars: int = 200_000
    max_images: int = 16
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    # Shared registry for several replicas: redis://host:6379/0 (none: in memory).
    registry_url: str | None = None
    registry_sync_interval_s: float = 0.1
    registry_key_prefix: str = "vision-chat:"
    # Circuit breaker: this many failures in a row take a worker out of dispatch for a while.
    breaker_failures: int = 3
    breaker_cooldown_s: float = 30.0

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
            "breaker_cooldown_s",
            "registry_sync_interval_s",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be > 0, not {getattr(self, name)}")
        for name in ("max_attempts", "max_body_bytes", "max_messages", "max_prompt_chars",
                     "max_images", "max_image_bytes", "max_image_pixels", "breaker_failures"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be >= 1, not {getattr(self, name)}")

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
class EnvOption:
    """A command-line flag whose default comes from an environment variable."""

    flag: str
    dest: str
    env: str
    type: type
    help: str

    def default_from(self, environ: Mapping[str, str], fallback: object) -> object:
        """The variable's value converted, or `fallback` when unset; ValueError names it."""
        raw = environ.get(self.env)
        if raw in (None, ""):
            return fallback
        try:
            return self.type(raw)
        except ValueError:
            raise ValueError(
                f"{self.env}={raw!r} is not a valid {self.type.__name__}"
            ) from None


_OPTIONS = (
    EnvOption("--host", "host", "CONTROLLER_HOST", str, "address to listen on"),
    EnvOption("--port", "port", "CONTROLLER_PORT", int, "port to listen on"),
    EnvOption(
        "--dispatch-method", "dispatch_method", "CONTROLLER_DISPATCH_METHOD", str,
        "how a worker is chosen: " + " or ".join(DISPATCH_METHODS),
    ),
    EnvOption(
        "--heart-beat-expiration", "heart_beat_expiration_s",
        "CONTROLLER_HEART_BEAT_EXPIRATION", float,
        "seconds without a heartbeat after which a worker is removed (FastChat workers: 90)",
    ),
    EnvOption(
        "--sweep-interval", "sweep_interval_s", "CONTROLLER_SWEEP_INTERVAL", float,
        "seconds between two sweeps for expired workers",
    ),
    EnvOption(
        "--status-timeout", "status_timeout_s", "CONTROLLER_STATUS_TIMEOUT", float,
        "seconds to wait for one worker's /worker_get_status",
    ),
    EnvOption(
        "--connect-timeout", "connect_timeout_s", "CONTROLLER_CONNECT_TIMEOUT", float,
        "seconds to connect to a worker when proxying a stream",
    ),
    EnvOption(
        "--first-frame-timeout", "first_frame_timeout_s", "CONTROLLER_FIRST_FRAME_TIMEOUT",
        float, "seconds to wait for a worker's first frame before failing over",
    ),
    EnvOption(
        "--idle-timeout", "idle_timeout_s", "CONTROLLER_IDLE_TIMEOUT", float,
        "longest gap in seconds between two frames of a stream",
    ),
    EnvOption(
        "--max-attempts", "max_attempts", "CONTROLLER_MAX_ATTEMPTS", int,
        "workers one stream may try before the first frame (failover)",
    ),
    EnvOption(
        "--parent-controller", "parent_controller", "CONTROLLER_PARENT_CONTROLLER", str,
        "URL of a parent controller to register with as a worker",
    ),
    EnvOption(
        "--advertise-address", "advertise_address", "CONTROLLER_ADVERTISE_ADDRESS", str,
        "URL the parent controller uses to reach this one",
    ),
    EnvOption(
        "--stats-interval", "stats_interval_s", "CONTROLLER_STATS_INTERVAL", float,
        "seconds per point of the /stats time series",
    ),
    EnvOption(
        "--log-level", "log_level", "CONTROLLER_LOG_LEVEL", str,
        "uvicorn log level (debug, info, warning, error)",
    ),
    EnvOption(
        "--worker-token", "worker_token", "CONTROLLER_WORKER_TOKEN", str,
        "shared token workers must send (Authorization: Bearer) to register, beat and "
        "leave; prefer the variable, flags show in ps",
    ),
    EnvOption(
        "--admin-token", "admin_token", "CONTROLLER_ADMIN_TOKEN", str,
        "token for admin operations: refresh, remove, register by hand, dispatch switch",
    ),
    EnvOption(
        "--worker-allowlist", "worker_allowlist", "CONTROLLER_WORKER_ALLOWLIST", str,
        "comma-separated CIDR networks and host names (*.domain) workers may use",
    ),
    EnvOption(
        "--max-body-bytes", "max_body_bytes", "CONTROLLER_MAX_BODY_BYTES", int,
        "largest request body accepted",
    ),
    EnvOption(
        "--max-messages", "max_messages", "CONTROLLER_MAX_MESSAGES", int,
        "most messages in one prompt",
    ),
    EnvOption(
        "--max-prompt-chars", "max_prompt_chars", "CONTROLLER_MAX_PROMPT_CHARS", int,
        "most characters of text in one prompt",
    ),
    EnvOption(
        "--max-images", "max_images", "CONTROLLER_MAX_IMAGES", int,
        "most images in one prompt",
    ),
    EnvOption(
        "--max-image-bytes", "max_image_bytes", "CONTROLLER_MAX_IMAGE_BYTES", int,
        "largest image accepted, in bytes",
    ),
    EnvOption(
        "--max-image-pixels", "max_image_pixels", "CONTROLLER_MAX_IMAGE_PIXELS", int,
        "largest image accepted, in pixels (decompression bombs are refused unread)",
    ),
    EnvOption(
        "--registry-url", "registry_url", "CONTROLLER_REGISTRY_URL", str,
        "Redis URL of a registry shared by several controller replicas (redis://host:6379/0)",
    ),
    EnvOption(
        "--registry-sync-interval", "registry_sync_interval_s",
        "CONTROLLER_REGISTRY_SYNC_INTERVAL", float,
        "seconds between two synchronisations of this replica with the shared registry",
    ),
    EnvOption(
        "--registry-key-prefix", "registry_key_prefix", "CONTROLLER_REGISTRY_KEY_PREFIX", str,
        "prefix of every Redis key (several clusters can share one Redis)",
    ),
    EnvOption(
        "--breaker-failures", "breaker_failures", "CONTROLLER_BREAKER_FAILURES", int,
        "failures in a row that take a worker out of dispatch",
    ),
    EnvOption(
        "--breaker-cooldown", "breaker_cooldown_s", "CONTROLLER_BREAKER_COOLDOWN", float,
        "seconds a failing worker stays out of dispatch before one probe request",
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
        try:
            default = opt.default_from(environ, getattr(defaults, opt.dest))
        except ValueError as exc:
            parser.error(str(exc))
        # Never echo a secret into --help output or logs.
        shown = ("set" if default else "unset") if opt.dest.endswith("_token") else default
        parser.add_argument(
            opt.flag, dest=opt.dest, type=opt.type, default=default,
            help=f"{opt.help} (env {opt.env}; default {shown})",
        )
    return parser

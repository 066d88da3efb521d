"""Typed app settings from the arguments after `--` and environment variables."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.settings import DISPATCH_METHODS, EnvOption

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_BACKENDS = ("llama-cpp", "simulated")


class AppSettingsError(ValueError):
    """An app option has a value that cannot work; the message names the option."""


@dataclass(frozen=True)
class AppSettings:
    """What app.py boots and how the pages behave; one instance per process."""

    controller_host: str = "0.0.0.0"
    controller_port: int = 10075
    dispatch_method: str = "shortest_queue"
    # When set, the app uses this controller and boots none of its own.
    controller_url: str | None = None
    embedded_worker: bool = True
    worker_backend: str = "llama-cpp"
    simulated_workers: int = 0
    log_dir: Path = REPO_ROOT / "logs"
    max_images: int = 4
    # Checked on upload before anything decodes the image (the controller's defaults).
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    # Text of the whole prompt (system prompt and every message), as the controller counts it.
    max_prompt_chars: int = 200_000
    # Shared registry of the embedded controller (redis://host:6379/0); none: in memory.
    registry_url: str | None = None
    # Never taken from argv: a password on the command line is visible in `ps`.
    admin_password: str | None = None
    # Sent as `Authorization: Bearer` for the admin actions when the controller requires it;
    # the same variable configures the embedded controller, so both sides agree.
    controller_token: str | None = None
    admin_refresh_s: float = 3.0

    def __post_init__(self) -> None:
        if self.dispatch_method not in DISPATCH_METHODS:
            raise AppSettingsError(
                f"dispatch method must be one of {', '.join(DISPATCH_METHODS)}, "
                f"not {self.dispatch_method!r}"
            )
        if not 0 < self.controller_port < 65536:
            raise AppSettingsError(
                f"controller port must be in 1..65535, not {self.controller_port}"
            )
        if self.worker_backend not in WORKER_BACKENDS:
            raise AppSettingsError(
                f"worker backend must be one of {', '.join(WORKER_BACKENDS)}, "
                f"not {self.worker_backend!r}"
            )
        if not 0 <= self.simulated_workers <= 64:
            raise AppSettingsError(
                f"simulated workers must be in 0..64, not {self.simulated_workers}"
            )
        if not 1 <= self.max_images <= 32:
            raise AppSettingsError(f"max images must be in 1..32, not {self.max_images}")
        for name in ("max_image_bytes", "max_image_pixels", "max_prompt_chars"):
            if getattr(self, name) < 1:
                raise AppSettingsError(
                    f"{name.replace('_', ' ')} must be >= 1, not {getattr(self, name)}"
                )
        if self.registry_url and not self.registry_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise AppSettingsError(
                "registry URL must start with redis://, rediss:// or unix://, "
                f"not {self.registry_url!r}"
            )
        if self.admin_refresh_s < 0.5:
            raise AppSettingsError(f"admin refresh must be >= 0.5 s, not {self.admin_refresh_s}")
        if self.controller_url and not self.controller_url.startswith(("http://", "https://")):
            raise AppSettingsError(
                f"controller URL must start with http:// or https://, not {self.controller_url!r}"
            )

    @property
    def boots_controller(self) -> bool:
        return not self.controller_url

    @property
    def local_controller_url(self) -> str:
        """URL the pages use to reach the controller."""
        if self.controller_url:
            return self.controller_url.rstrip("/")
        host = self.controller_host
        host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        return f"http://{host}:{self.controller_port}"


def _env_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_OPTIONS = (
    EnvOption("--controller-host", "controller_host", "CONTROLLER_HOST", str,
            "address the embedded controller listens on"),
    EnvOption("--controller-port", "controller_port", "CONTROLLER_PORT", int,
            "port of the embedded controller"),
    EnvOption("--dispatch-method", "dispatch_method", "CONTROLLER_DISPATCH_METHOD", str,
            "how the controller picks a worker: " + " or ".join(DISPATCH_METHODS)),
    EnvOption("--controller-url", "controller_url", "APP_CONTROLLER_URL", str,
            "use this running controller instead of booting one"),
    EnvOption("--worker-backend", "worker_backend", "APP_WORKER_BACKEND", str,
            "backend of the embedded worker: " + " or ".join(WORKER_BACKENDS)),
    EnvOption("--simulated-workers", "simulated_workers", "APP_SIMULATED_WORKERS", int,
            "extra simulated workers for demos (every other one takes images)"),
    EnvOption("--log-dir", "log_dir", "APP_LOG_DIR", Path,
            "folder of the daily conversation logs and uploaded images"),
    EnvOption("--max-images", "max_images", "APP_MAX_IMAGES", int,
            "images per conversation"),
    EnvOption("--max-image-bytes", "max_image_bytes", "APP_MAX_IMAGE_BYTES", int,
            "largest image upload, in bytes"),
    EnvOption("--max-image-pixels", "max_image_pixels", "APP_MAX_IMAGE_PIXELS", int,
            "largest image upload, in pixels (read from the header, before decoding)"),
    EnvOption("--max-prompt-chars", "max_prompt_chars", "APP_MAX_PROMPT_CHARS", int,
            "most characters of text in one conversation sent to a model"),
    EnvOption("--registry-url", "registry_url", "CONTROLLER_REGISTRY_URL", str,
            "Redis registry the embedded controller shares with other replicas"),
    EnvOption("--admin-refresh", "admin_refresh_s", "APP_ADMIN_REFRESH", float,
            "seconds between two refreshes of the admin page"),
)


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The parser of the app options (after `--`), defaults from `environ`."""
    defaults = AppSettings()
    parser = argparse.ArgumentParser(
        prog="streamlit run app.py --",
        description="All-in-one vision chat: options after `--`, or environment variables.",
        exit_on_error=False,
    )
    for opt in _OPTIONS:
        try:
            default = opt.default_from(environ, getattr(defaults, opt.dest))
        except ValueError as exc:
            raise AppSettingsError(str(exc)) from exc
        parser.add_argument(opt.flag, dest=opt.dest, type=opt.type, default=default,
                            help=f"{opt.help} (env {opt.env}; default {default})")
    embedded = defaults.embedded_worker
    raw = environ.get("APP_EMBEDDED_WORKER")
    if raw not in (None, ""):
        try:
            embedded = _env_bool(raw)
        except ValueError as exc:
            raise AppSettingsError(f"APP_EMBEDDED_WORKER={raw!r} is not 0/1/true/false") from exc
    parser.add_argument("--no-embedded-worker", dest="embedded_worker", action="store_false",
                        default=embedded,
                        help="start no model worker in this process (env APP_EMBEDDED_WORKER=0)")
    return parser


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> AppSettings:
    """Settings from `argv` (the arguments after `--`) over `environ` over defaults."""
    environ = os.environ if environ is None else environ
    parser = build_parser(environ)
    try:
        args, unknown = parser.parse_known_args(list(argv or []))
    except argparse.ArgumentError as exc:
        raise AppSettingsError(str(exc)) from exc
    if unknown:
        raise AppSettingsError(f"unknown app options: {' '.join(unknown)} (see docs/app.md)")
    values = vars(args)
    password = environ.get("APP_ADMIN_PASSWORD") or None
    token = environ.get("CONTROLLER_ADMIN_TOKEN") or None
    return AppSettings(**values, admin_password=password, controller_token=token)

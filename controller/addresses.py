"""Validation of worker addresses: the controller calls these URLs, so only plain http(s)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from controller.errors import AddressNotAllowed, InvalidWorkerAddress


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


class AddressPolicy:
    """Which hosts workers may register from and point to (empty allowlist: any)."""

    def __init__(self, allowlist: str | None) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hostnames: list[str] = []
        for entry in (e.strip().lower() for e in (allowlist or "").split(",")):
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hostnames.append(entry)

    @property
    def open(self) -> bool:
        return not self.networks and not self.hostnames

    def _allows_host(self, host: str) -> bool:
        host = host.lower().strip("[]")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            # Host names are matched by name, never resolved: DNS could point anywhere.
            return any(
                host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
                for pattern in self.hostnames
            )
        return any(ip in network for network in self.networks)

    def check_target(self, address: str) -> None:
        """Raise unless the worker URL's host is allowed."""
        if self.open:
            return
        host = urlsplit(address).hostname or ""
        if not self._allows_host(host):
            raise AddressNotAllowed(
                f"worker host {host!r} is not in the allowlist (CONTROLLER_WORKER_ALLOWLIST)"
            )

    def check_source(self, client_host: str | None) -> None:
        """Raise unless the registering client's address is allowed."""
        if self.open:
            return
        if client_host is None or not self._allows_host(client_host):
            raise AddressNotAllowed(
                f"registration from {client_host!r} is not allowed "
                "(CONTROLLER_WORKER_ALLOWLIST)"
            )

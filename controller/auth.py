"""Bearer-token checks for workers and admins (constant-time comparison)."""

from __future__ import annotations

import hmac
from enum import Enum

from controller.errors import ControllerError


class Unauthorized(ControllerError):
    """No token where one is required."""

    status_code = 401


class Forbidden(ControllerError):
    """A token that is not the right one."""

    status_code = 403


class Role(Enum):
    WORKER = "worker"  # register, heartbeat, leave
    ADMIN = "admin"  # refresh, remove, register by hand, dispatch switch


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _matches(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


class TokenCheck:
    """Which tokens open which operations; the admin token opens everything."""

    def __init__(self, worker_token: str | None, admin_token: str | None) -> None:
        self.worker_token = worker_token or None
        self.admin_token = admin_token or None

    @property
    def registration_open(self) -> bool:
        return self.worker_token is None

    def is_admin(self, authorization: str | None) -> bool:
        token = bearer_token(authorization)
        return token is not None and _matches(token, self.admin_token)

    def require(self, role: Role, authorization: str | None) -> None:
        """Raise Unauthorized/Forbidden unless the header carries a token for `role`."""
        needed = self.worker_token if role is Role.WORKER else self.admin_token
        if needed is None:
            return  # that role is not protected on this controller
        variable = "CONTROLLER_WORKER_TOKEN" if role is Role.WORKER else "CONTROLLER_ADMIN_TOKEN"
        token = bearer_token(authorization)
        if token is None:
            raise Unauthorized(
                f"this operation needs the {role.value} token ({variable}) as "
                "'Authorization: Bearer <token>'"
            )
        if not (_matches(token, needed) or _matches(token, self.admin_token)):
            raise Forbidden(f"the token sent is not the {role.value} token")

"""The authorization seam: every route declares the permission it needs.

The spine has one role, ``admin``, held by the bootstrap token. The security issue
adds roles and scoped grants here without touching the routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from slipway.errors import Forbidden


class Permission(StrEnum):
    MODEL_READ = "model:read"
    MODEL_WRITE = "model:write"
    VERSION_REGISTER = "version:register"
    ENDPOINT_READ = "endpoint:read"
    ENDPOINT_DEPLOY = "endpoint:deploy"
    PREDICT = "predict"
    PREDICTION_READ = "prediction:read"
    METRICS_READ = "metrics:read"


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    token_id: str


def authorize(principal: Principal, permission: Permission, target: str | None = None) -> None:
    """Raise Forbidden unless ``principal`` holds ``permission`` (on ``target``)."""
    allowed = ROLE_PERMISSIONS.get(principal.role, frozenset())
    if permission not in allowed:
        raise Forbidden(f"{permission.value} is not granted" + (f" on {target}" if target else ""))

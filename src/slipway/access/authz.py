"""Roles, grants and the one authorization decision.

Every route declares the permission it needs (``api/auth.require``). A principal holds
grants — a role, globally or on one model or one endpoint — and a token may narrow them
further with scopes. A request is allowed when some grant's role includes the
permission, the grant's scope covers the request's target, and the token's scopes (if
any) include the permission. Everything else is denied.

    role        permissions
    viewer      model:read endpoint:read prediction:read metrics:read quarantine:read
                monitor:read policy:read
    developer   viewer + model:write version:register approval:request testscore:attest
    approver    viewer + approval:decide testscore:attest
    operator    viewer + endpoint:deploy quarantine:replay monitor:write feedback:write
                approval:request
    reviewer    viewer + prediction:override feedback:write   (human review of answers)
    predictor   predict feedback:write       (what service accounts get, per endpoint)
    admin       every permission (policy:manage, model:hold, retention:run: admin only)

Separation of duties: who registers a version cannot approve it, and policies are
written by admins, not by the developers they gate (``governance/``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
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
    AUDIT_READ = "audit:read"
    PRINCIPAL_MANAGE = "principal:manage"
    QUARANTINE_READ = "quarantine:read"
    QUARANTINE_REPLAY = "quarantine:replay"
    MONITOR_READ = "monitor:read"
    MONITOR_WRITE = "monitor:write"
    FEEDBACK_WRITE = "feedback:write"
    CHANNEL_MANAGE = "channel:manage"
    POLICY_READ = "policy:read"
    POLICY_MANAGE = "policy:manage"
    APPROVAL_REQUEST = "approval:request"
    APPROVAL_DECIDE = "approval:decide"
    TESTSCORE_ATTEST = "testscore:attest"
    PREDICTION_OVERRIDE = "prediction:override"
    MODEL_HOLD = "model:hold"
    RETENTION_RUN = "retention:run"


# What kind of object a permission's target is, so a scoped grant can be matched
# against the route's path parameter. None: the permission has no per-object target.
TARGET_KIND: dict[Permission, str | None] = {
    Permission.MODEL_READ: "model",
    Permission.MODEL_WRITE: "model",
    Permission.VERSION_REGISTER: "model",
    Permission.ENDPOINT_READ: "endpoint",
    Permission.ENDPOINT_DEPLOY: "endpoint",
    Permission.PREDICT: "endpoint",
    Permission.PREDICTION_READ: "endpoint",
    Permission.METRICS_READ: None,
    Permission.AUDIT_READ: None,
    Permission.PRINCIPAL_MANAGE: None,
    Permission.QUARANTINE_READ: "endpoint",
    Permission.QUARANTINE_REPLAY: "endpoint",
    Permission.MONITOR_READ: "endpoint",
    Permission.MONITOR_WRITE: "endpoint",
    Permission.FEEDBACK_WRITE: "endpoint",
    Permission.CHANNEL_MANAGE: None,
    Permission.POLICY_READ: None,
    Permission.POLICY_MANAGE: None,
    Permission.APPROVAL_REQUEST: "model",
    Permission.APPROVAL_DECIDE: "model",
    Permission.TESTSCORE_ATTEST: "model",
    Permission.PREDICTION_OVERRIDE: "endpoint",
    Permission.MODEL_HOLD: "model",
    Permission.RETENTION_RUN: None,
}

_VIEWER = frozenset(
    {
        Permission.MODEL_READ,
        Permission.ENDPOINT_READ,
        Permission.PREDICTION_READ,
        Permission.METRICS_READ,
        Permission.QUARANTINE_READ,
        Permission.MONITOR_READ,
        Permission.POLICY_READ,
    }
)
ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "viewer": _VIEWER,
    "developer": _VIEWER
    | {
        Permission.MODEL_WRITE,
        Permission.VERSION_REGISTER,
        Permission.APPROVAL_REQUEST,
        Permission.TESTSCORE_ATTEST,
    },
    "approver": _VIEWER | {Permission.APPROVAL_DECIDE, Permission.TESTSCORE_ATTEST},
    "operator": _VIEWER
    | {
        Permission.ENDPOINT_DEPLOY,
        Permission.QUARANTINE_REPLAY,
        Permission.MONITOR_WRITE,
        Permission.FEEDBACK_WRITE,
        Permission.APPROVAL_REQUEST,
    },
    "reviewer": _VIEWER | {Permission.PREDICTION_OVERRIDE, Permission.FEEDBACK_WRITE},
    "predictor": frozenset({Permission.PREDICT, Permission.FEEDBACK_WRITE}),
    "admin": frozenset(Permission),
}
ROLES = tuple(ROLE_PERMISSIONS)
# Routes with no object in the path (list, artifact upload) that a scoped grant may use.
# Creating a model is not among them: a grant cannot be scoped to what does not exist.
_COLLECTION_OK = frozenset(
    {
        Permission.MODEL_READ,
        Permission.ENDPOINT_READ,
        Permission.PREDICTION_READ,
        Permission.VERSION_REGISTER,
        # Reads of one record by id re-check the scope once the record's endpoint is known;
        # lists of alerts keep only what the caller may read.
        Permission.QUARANTINE_READ,
        Permission.MONITOR_READ,
        Permission.MONITOR_WRITE,
        # Decided or overridden by id: the route re-checks once it knows the model
        # (approval) or the endpoint (prediction).
        Permission.APPROVAL_DECIDE,
        Permission.PREDICTION_OVERRIDE,
    }
)
SCOPE_KINDS = ("global", "model", "endpoint")


@dataclass(frozen=True)
class Grant:
    role: str
    scope_kind: str = "global"
    scope_name: str | None = None

    def covers(self, permission: Permission, target: str | None) -> bool:
        if permission not in ROLE_PERMISSIONS.get(self.role, frozenset()):
            return False
        if self.scope_kind == "global":
            return True
        kind = TARGET_KIND.get(permission)
        if target is None:
            return permission in _COLLECTION_OK and kind == self.scope_kind
        return kind == self.scope_kind and target == self.scope_name


@dataclass(frozen=True)
class Principal:
    """The caller of one request, as resolved from its token."""

    name: str
    token_id: str | None
    grants: tuple[Grant, ...] = ()
    scopes: frozenset[str] = field(default_factory=frozenset)

    def can(self, permission: Permission, target: str | None = None) -> bool:
        if self.scopes and permission.value not in self.scopes:
            return False
        return any(g.covers(permission, target) for g in self.grants)


def authorize(principal: Principal, permission: Permission, target: str | None = None) -> None:
    """Raise Forbidden unless ``principal`` may do ``permission`` (on ``target``)."""
    if not principal.can(permission, target):
        where = f" on {TARGET_KIND.get(permission)} {target!r}" if target else ""
        raise Forbidden(f"{principal.name} lacks {permission.value}{where}")


def permissions_of(roles: Iterable[str]) -> frozenset[Permission]:
    out: frozenset[Permission] = frozenset()
    for role in roles:
        out |= ROLE_PERMISSIONS.get(role, frozenset())
    return out

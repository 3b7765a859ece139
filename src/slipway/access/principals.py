"""Principals (users and service accounts) and their grants; the first admin.

Service accounts are for machines calling endpoints: they may hold only the
``predictor`` role, scoped to named endpoints (least privilege).
"""

from __future__ import annotations

import builtins
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from slipway.access.authz import ROLES, SCOPE_KINDS
from slipway.access.tokens import TokenService, _principal_row, insert_token
from slipway.audit import Actor, append
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.ids import new_id, utcnow
from slipway.registry.models import check_slug
from slipway.store.engine import transaction
from slipway.store.tables import grants, principals

KINDS = ("user", "service")


def principal_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "owner": row.owner,
        "disabled": bool(row.disabled),
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def grant_view(row: Any, principal_name: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "principal": principal_name,
        "role": row.role,
        "scope_kind": row.scope_kind,
        "scope_name": row.scope_name,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


def _insert_principal(
    conn: Connection, name: str, kind: str, owner: str, actor: Actor
) -> dict[str, Any]:
    check_slug(name)
    if kind not in KINDS:
        raise ValidationFailed.field("kind", f"must be one of {', '.join(KINDS)}")
    if kind == "service" and not owner.strip():
        raise ValidationFailed.field("owner", "a service account needs an owner")
    now = utcnow()
    row = {
        "id": new_id(),
        "name": name,
        "kind": kind,
        "owner": owner,
        "disabled": False,
        "created_by": actor.name,
        "created_at": now,
        "updated_at": now,
    }
    try:
        with conn.begin_nested():
            conn.execute(principals.insert().values(**row))
    except IntegrityError:
        raise Conflict(f"principal {name!r} already exists") from None
    view = principal_view(SimpleNamespace(**row))
    append(conn, actor, "principal.create", target_kind="principal", target=name, after=view)
    return view


def _insert_grant(
    conn: Connection,
    principal: Any,
    role: str,
    scope_kind: str,
    scope_name: str | None,
    actor: Actor,
) -> dict[str, Any]:
    if role not in ROLES:
        raise ValidationFailed.field("role", f"must be one of {', '.join(ROLES)}")
    if scope_kind not in SCOPE_KINDS:
        raise ValidationFailed.field("scope_kind", f"must be one of {', '.join(SCOPE_KINDS)}")
    if scope_kind == "global":
        if scope_name:
            raise ValidationFailed.field("scope_name", "a global grant names no object")
        scope_name = None
    elif not scope_name:
        raise ValidationFailed.field("scope_name", f"name the {scope_kind} this grant covers")
    if principal.kind == "service" and (role != "predictor" or scope_kind != "endpoint"):
        raise ValidationFailed.field(
            "role", "service accounts may only hold the predictor role on named endpoints"
        )
    row = {
        "id": new_id(),
        "principal_id": principal.id,
        "role": role,
        "scope_kind": scope_kind,
        "scope_name": scope_name,
        "created_by": actor.name,
        "created_at": utcnow(),
        "revoked_at": None,
    }
    conn.execute(grants.insert().values(**row))
    view = grant_view(SimpleNamespace(**row), principal.name)
    append(conn, actor, "grant.create", target_kind="principal", target=principal.name, after=view)
    return view


class PrincipalService:
    def __init__(self, engine: Engine, tokens: TokenService | None = None) -> None:
        self.engine = engine
        # Disabling a principal or changing its grants changes what its tokens may do:
        # this process's token snapshot is dropped at once (other workers refresh theirs
        # within a second).
        self.tokens = tokens

    def _changed(self) -> None:
        if self.tokens is not None:
            self.tokens.invalidate()

    def create(self, name: str, *, kind: str, owner: str = "", actor: Actor) -> dict[str, Any]:
        with transaction(self.engine) as conn:
            return _insert_principal(conn, name, kind, owner, actor)

    def get(self, name: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            view = principal_view(_principal_row(conn, name))
        view["grants"] = self.list_grants(name)
        return view

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(principals).order_by(principals.c.name)).all()
        return [principal_view(r) for r in rows]

    def set_disabled(self, name: str, disabled: bool, *, actor: Actor) -> dict[str, Any]:
        if actor.name == name and disabled:
            raise Conflict("you cannot disable yourself")
        with transaction(self.engine) as conn:
            row = _principal_row(conn, name)
            before = principal_view(row)
            conn.execute(
                principals.update()
                .where(principals.c.id == row.id)
                .values(disabled=disabled, updated_at=utcnow())
            )
            after = principal_view(_principal_row(conn, name))
            append(
                conn,
                actor,
                "principal.disable" if disabled else "principal.enable",
                target_kind="principal",
                target=name,
                before=before,
                after=after,
            )
        self._changed()
        return after

    def grant(
        self,
        name: str,
        role: str,
        *,
        actor: Actor,
        scope_kind: str = "global",
        scope_name: str | None = None,
    ) -> dict[str, Any]:
        with transaction(self.engine) as conn:
            view = _insert_grant(
                conn, _principal_row(conn, name), role, scope_kind, scope_name, actor
            )
        self._changed()
        return view

    def list_grants(self, name: str | None = None) -> builtins.list[dict[str, Any]]:
        query = select(grants, principals.c.name.label("principal_name")).join(
            principals, principals.c.id == grants.c.principal_id
        )
        if name:
            query = query.where(principals.c.name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(grants.c.created_at)).all()
        return [grant_view(r, r.principal_name) for r in rows]

    def revoke_grant(self, grant_id: str, *, actor: Actor) -> dict[str, Any]:
        with transaction(self.engine) as conn:
            row = conn.execute(
                select(grants, principals.c.name.label("principal_name"))
                .join(principals, principals.c.id == grants.c.principal_id)
                .where(grants.c.id == grant_id)
            ).first()
            if row is None:
                raise NotFound(f"grant {grant_id!r} not found")
            before = grant_view(row, row.principal_name)
            revoked_at = row.revoked_at or utcnow()
            conn.execute(
                grants.update().where(grants.c.id == grant_id).values(revoked_at=revoked_at)
            )
            after = {**before, "revoked_at": revoked_at.isoformat()}
            append(
                conn,
                actor,
                "grant.revoke",
                target_kind="principal",
                target=row.principal_name,
                before=before,
                after=after,
            )
        self._changed()
        return after


def bootstrap_admin(engine: Engine, name: str = "admin") -> str:
    """Create the first admin (principal, global admin grant, token) in one audited
    transaction; returns the token to show once."""
    actor = Actor("system")
    with transaction(engine) as conn:
        view = _insert_principal(conn, name, "user", "", actor)
        principal = _principal_row(conn, view["name"])
        _insert_grant(conn, principal, "admin", "global", None, actor)
        secret, _ = insert_token(
            conn, principal_id=principal.id, principal_name=name, actor=actor, name="bootstrap"
        )
    return secret

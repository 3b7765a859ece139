"""Models: the inventory. Created, updated, listed, retired; never hard-deleted."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, select
from sqlalchemy.exc import IntegrityError

from slipway.audit import Actor, append
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.ids import new_id, utcnow
from slipway.store.engine import transaction
from slipway.store.tables import models

NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
RISK_TIERS = ("low", "medium", "high")
MODEL_STATUSES = ("active", "deprecated", "retired")
EDITABLE = (
    "description",
    "owner",
    "oncall",
    "runbook_url",
    "risk_tier",
    "intended_use",
    "limitations",
    "tags",
    "status",
)


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    owner: str
    description: str = ""
    oncall: str = ""
    runbook_url: str = ""
    risk_tier: str = "medium"
    intended_use: str = ""
    limitations: str = ""
    tags: list[str] = field(default_factory=list)
    status: str = "active"
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Legal hold: while set, retention purges nothing of this model.
    legal_hold_at: datetime | None = None
    legal_hold_by: str | None = None
    legal_hold_reason: str | None = None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Model:
        return cls(**row._asdict())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("created_at", "updated_at", "legal_hold_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def check_slug(name: Any, field_name: str = "name") -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValidationFailed.field(
            field_name,
            "must be 1-64 lowercase letters, digits or '-', starting and ending with a "
            "letter or digit",
        )
    return name


def _check_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key == "tags":
            if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
                raise ValidationFailed.field("tags", "must be a list of non-empty strings")
            clean[key] = sorted(set(value))
        elif key == "risk_tier":
            if value not in RISK_TIERS:
                raise ValidationFailed.field(key, f"must be one of {', '.join(RISK_TIERS)}")
            clean[key] = value
        elif key == "status":
            if value not in MODEL_STATUSES:
                raise ValidationFailed.field(key, f"must be one of {', '.join(MODEL_STATUSES)}")
            clean[key] = value
        elif key == "owner":
            if not isinstance(value, str) or not value.strip():
                raise ValidationFailed.field("owner", "is required")
            clean[key] = value.strip()
        elif key == "runbook_url":
            if value and not re.match(r"^https?://", str(value)):
                raise ValidationFailed.field(key, "must be an http(s) URL")
            clean[key] = value or ""
        elif key in EDITABLE:
            if not isinstance(value, str):
                raise ValidationFailed.field(key, "must be a string")
            clean[key] = value
        else:
            raise ValidationFailed.field(key, "unknown field")
    return clean


class ModelService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, *, name: str, owner: str, actor: Actor, **fields: Any) -> Model:
        check_slug(name)
        values = _check_fields({"owner": owner, **fields})
        values.pop("status", None)  # a model starts active
        now = utcnow()
        row = {
            "id": new_id(),
            "name": name,
            "created_by": actor.name,
            "created_at": now,
            "updated_at": now,
            "description": "",
            "oncall": "",
            "runbook_url": "",
            "risk_tier": "medium",
            "intended_use": "",
            "limitations": "",
            "tags": [],
            "status": "active",
            **values,
        }
        try:
            with transaction(self.engine) as conn:
                conn.execute(models.insert().values(**row))
                created = Model(**row)
                append(
                    conn,
                    actor,
                    "model.create",
                    target_kind="model",
                    target=name,
                    after=created.to_dict(),
                )
        except IntegrityError:
            raise Conflict(f"model {name!r} already exists") from None
        return created

    def get(self, name: str) -> Model:
        with self.engine.connect() as conn:
            row = conn.execute(select(models).where(models.c.name == name)).first()
        if row is None:
            raise NotFound(f"model {name!r} not found")
        return Model.from_row(row)

    def list(
        self,
        *,
        name: str | None = None,
        tag: str | None = None,
        owner: str | None = None,
        status: str | None = None,
    ) -> list[Model]:
        query = select(models).order_by(models.c.name)
        if name:
            query = query.where(models.c.name.contains(name, autoescape=True))
        if owner:
            query = query.where(models.c.owner == owner)
        if status:
            query = query.where(models.c.status == status)
        with self.engine.connect() as conn:
            found = [Model.from_row(r) for r in conn.execute(query)]
        # Tags are a JSON list; filtering in Python keeps one code path for both backends.
        return [m for m in found if tag in m.tags] if tag else found

    def update(self, name: str, *, actor: Actor, **fields: Any) -> Model:
        values = _check_fields(fields)
        current = self.get(name)
        if current.status == "retired":
            # Retirement is final: the entry stays for the record, unchanged.
            raise Conflict(f"model {name!r} is retired")
        action = "model.retire" if values.get("status") == "retired" else "model.update"
        with transaction(self.engine) as conn:
            conn.execute(
                models.update()
                .where(models.c.id == current.id)
                .values(**values, updated_at=utcnow())
            )
            row = conn.execute(select(models).where(models.c.id == current.id)).one()
            updated = Model.from_row(row)
            append(
                conn,
                actor,
                action,
                target_kind="model",
                target=name,
                before=current.to_dict(),
                after=updated.to_dict(),
            )
        return updated

    def retire(self, name: str, *, actor: Actor) -> Model:
        current = self.get(name)
        if current.status == "retired":
            return current
        return self.update(name, actor=actor, status="retired")

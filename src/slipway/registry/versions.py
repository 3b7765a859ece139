"""Versions: immutable releases of a model, numbered per model.

A version is created ``registered``; the smoke test in a sandbox process then marks it
``ready`` or ``failed`` (with the reason). Only ``ready`` versions may take traffic.
Nothing about a version changes after creation except its status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, func, select
from sqlalchemy.exc import IntegrityError

from slipway.artifacts.flavors import LoadSpec, get_flavor
from slipway.artifacts.store import ArtifactStore
from slipway.audit import Actor, append
from slipway.contracts.check import check_rows
from slipway.contracts.schema import Contract
from slipway.contracts.signature import Signature
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.ids import new_id, utcnow
from slipway.registry.lineage import check_lineage
from slipway.registry.models import ModelService
from slipway.store.engine import transaction
from slipway.store.tables import models, versions

VERSION_STATUSES = ("registered", "ready", "failed", "retired")
MAX_EXAMPLE_ROWS = 100


@dataclass(frozen=True)
class Version:
    id: str
    model: str
    number: int
    artifact_sha256: str
    artifact_size: int
    flavor: str
    signature: dict[str, Any]
    contract: dict[str, Any] | None = None
    # The reference profile (monitoring/profile.py); None when no training data was given.
    profile: dict[str, Any] | None = None
    library_versions: dict[str, str] = field(default_factory=dict)
    trusted_types: list[str] = field(default_factory=list)
    example_rows: list[dict[str, Any]] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    status: str = "registered"
    status_reason: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Row[Any], model: str) -> Version:
        data = row._asdict()
        data.pop("model_id")
        return cls(model=model, **data)

    @property
    def data_contract(self) -> Contract:
        """The version's data contract; names and types only for versions without one."""
        if self.contract is not None:
            return Contract.from_dict(self.contract)
        return Contract.from_signature(self.signature)

    def load_spec(self, trusted_modules: tuple[str, ...] = ()) -> LoadSpec:
        sig = Signature.from_dict(self.signature)
        return LoadSpec(
            feature_names=sig.input_names,
            classes=sig.classes,
            trusted_types=tuple(self.trusted_types),
            trusted_modules=trusted_modules,
        )

    def to_dict(self, *, with_examples: bool = False) -> dict[str, Any]:
        out = asdict(self)
        for key in ("created_at", "updated_at"):
            out[key] = out[key].isoformat() if out[key] else None
        out["contract"] = self.data_contract.to_dict()
        # Sketches are bulky and binary; the profile has its own route.
        out["has_profile"] = out.pop("profile") is not None
        if not with_examples:
            out.pop("example_rows")
        return out


def _check_contract(contract: Mapping[str, Any] | None, sig: Signature) -> Contract | None:
    """The contract must cover exactly the fields the model is called with."""
    if contract is None:
        return None
    checked = Contract.from_dict(contract)
    missing = [n for n in sig.input_names if n not in checked.names]
    extra = [n for n in checked.names if n not in sig.input_names]
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"not in the signature: {', '.join(extra)}"] if extra else []
        )
        raise ValidationFailed.field("contract.inputs", "; ".join(parts))
    return checked


def _check_profile(profile: Mapping[str, Any] | None, sig: Signature) -> dict[str, Any] | None:
    """A reference profile must parse and describe only the model's inputs."""
    if profile is None:
        return None
    from slipway.monitoring.profile import Profile

    parsed = Profile.from_dict(profile, "profile")
    extra = [name for name in parsed.columns if name not in sig.input_names]
    if extra:
        raise ValidationFailed.field(
            "profile.columns", f"not in the signature: {', '.join(sorted(extra))}"
        )
    return parsed.to_dict()


def _check_examples(contract: Contract, rows: list[dict[str, Any]]) -> None:
    result = check_rows(contract, rows)
    if result.errors:
        details = [
            {"field": f"example_rows[{i}].{e['field']}", "reason": e["reason"]}
            for i, errors in sorted(result.errors.items())
            for e in errors
        ]
        first = details[0]
        raise ValidationFailed(
            f"{first['field']}: {first['reason']} (example rows must meet the contract)",
            details=details,
        )


class VersionService:
    def __init__(self, engine: Engine, artifacts: ArtifactStore, model_service: ModelService):
        self.engine = engine
        self.artifacts = artifacts
        self.models = model_service

    def register(
        self,
        model_name: str,
        *,
        artifact_sha256: str,
        flavor: str,
        signature: Mapping[str, Any],
        example_rows: list[dict[str, Any]],
        actor: Actor,
        lineage: Mapping[str, Any] | None = None,
        trusted_types: list[str] | None = None,
        description: str = "",
        library_versions: Mapping[str, str] | None = None,
        contract: Mapping[str, Any] | None = None,
        profile: Mapping[str, Any] | None = None,
    ) -> Version:
        """Record a new version (status ``registered``); the caller then smoke-tests it."""
        model = self.models.get(model_name)
        if model.status == "retired":
            raise Conflict(f"model {model_name!r} is retired; no new versions")
        sig = Signature.from_dict(signature)
        if not isinstance(example_rows, list) or not example_rows:
            raise ValidationFailed.field(
                "example_rows", "at least one example row is required for the smoke test"
            )
        if len(example_rows) > MAX_EXAMPLE_ROWS:
            raise ValidationFailed.field("example_rows", f"at most {MAX_EXAMPLE_ROWS} rows")
        checked_contract = _check_contract(contract, sig)
        if checked_contract is not None:
            _check_examples(checked_contract, example_rows)
        sig.matrix(example_rows, where="example_rows")
        checked_profile = _check_profile(profile, sig)
        trusted = list(trusted_types or [])
        if not all(isinstance(t, str) for t in trusted):
            raise ValidationFailed.field("trusted_types", "must be a list of type names")
        clean_lineage = check_lineage(lineage or {})
        if "parent_version" in clean_lineage:
            self.get(model_name, clean_lineage["parent_version"])
        if not self.artifacts.exists(artifact_sha256):
            raise NotFound(f"artifact {artifact_sha256!r} not found; upload it first")
        data = self.artifacts.read_verified(artifact_sha256)
        flavor_impl = get_flavor(flavor)
        spec = LoadSpec(sig.input_names, sig.classes, tuple(trusted), ())
        if flavor != "pyfunc":  # pyfunc trust is the server's to decide, at load time
            flavor_impl.validate(data, spec)
        libs = dict(library_versions or {})
        libs.update(flavor_impl.library_versions())
        now = utcnow()
        for _attempt in range(5):
            try:
                number = self._insert(
                    model.id,
                    model_name,
                    actor,
                    now,
                    artifact_sha256=artifact_sha256,
                    artifact_size=len(data),
                    flavor=flavor,
                    library_versions=libs,
                    signature=sig.to_dict(),
                    trusted_types=trusted,
                    example_rows=example_rows,
                    lineage=clean_lineage,
                    description=description,
                    contract=checked_contract.to_dict() if checked_contract else None,
                    profile=checked_profile,
                )
            except IntegrityError:
                continue  # a concurrent registration took this number; take the next
            return self.get(model_name, number)
        raise Conflict("could not allocate a version number; retry")

    def _insert(self, model_id: str, model_name: str, actor: Actor, now: Any, **fields: Any) -> int:
        with transaction(self.engine) as conn:
            # Lock the model row first: registrations of one model then take numbers one
            # after another instead of colliding (SQLite's write lock already does this).
            conn.execute(select(models.c.id).where(models.c.id == model_id).with_for_update()).one()
            number = (
                conn.execute(
                    select(func.coalesce(func.max(versions.c.number), 0)).where(
                        versions.c.model_id == model_id
                    )
                ).scalar_one()
                + 1
            )
            row = {
                "id": new_id(),
                "model_id": model_id,
                "number": number,
                **fields,
                "status": "registered",
                "status_reason": "",
                "created_by": actor.name,
                "created_at": now,
                "updated_at": now,
            }
            conn.execute(versions.insert().values(**row))
            summary = {k: v for k, v in row.items() if k not in ("example_rows", "model_id")}
            append(
                conn,
                actor,
                "version.register",
                target_kind="version",
                target=f"{model_name}/{number}",
                after=summary,
            )
        return int(number)

    def set_status(
        self, version: Version, status: str, reason: str = "", *, actor: Actor
    ) -> Version:
        if status not in VERSION_STATUSES:
            raise ValidationFailed.field("status", f"must be one of {', '.join(VERSION_STATUSES)}")
        with transaction(self.engine) as conn:
            conn.execute(
                versions.update()
                .where(versions.c.id == version.id)
                .values(status=status, status_reason=reason, updated_at=utcnow())
            )
            append(
                conn,
                actor,
                f"version.{status}",
                target_kind="version",
                target=f"{version.model}/{version.number}",
                before={"status": version.status, "status_reason": version.status_reason},
                after={"status": status, "status_reason": reason},
            )
        return self.get(version.model, version.number)

    def get(self, model_name: str, number: int | str) -> Version:
        model = self.models.get(model_name)
        try:
            num = int(number)
        except (TypeError, ValueError):
            raise ValidationFailed.field("version", "must be a version number") from None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(versions).where(versions.c.model_id == model.id, versions.c.number == num)
            ).first()
        if row is None:
            raise NotFound(f"version {num} of model {model_name!r} not found")
        return Version.from_row(row, model_name)

    def get_by_id(self, version_id: str) -> Version:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(versions, models.c.name.label("model_name"))
                .join(models, models.c.id == versions.c.model_id)
                .where(versions.c.id == version_id)
            ).first()
        if row is None:
            raise NotFound(f"version {version_id!r} not found")
        data = row._asdict()
        name = data.pop("model_name")
        data.pop("model_id")
        return Version(model=name, **data)

    def list(self, model_name: str, *, status: str | None = None) -> list[Version]:
        model = self.models.get(model_name)
        query = select(versions).where(versions.c.model_id == model.id)
        if status:
            query = query.where(versions.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(versions.c.number)).all()
        return [Version.from_row(r, model_name) for r in rows]

    def retire(self, model_name: str, number: int, *, actor: Actor) -> Version:
        return self.set_status(
            self.get(model_name, number), "retired", "retired by request", actor=actor
        )

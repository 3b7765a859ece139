"""Endpoints: the stable names callers use, and which version answers on each.

Deploying loads the new version first; only when it loaded (hash verified, flavor
loaded) is the endpoint row updated and the pool switched. A version that fails to load
never takes traffic and the current one keeps serving.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from slipway.audit import Actor, append
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.ids import new_id, utcnow
from slipway.registry.models import check_slug
from slipway.registry.versions import Version, VersionService
from slipway.serving.limits import LIMIT_NAMES, EndpointLimits, check_limits
from slipway.serving.pool import Plan, PredictorPool
from slipway.store.engine import transaction
from slipway.store.tables import endpoints, models, versions


@dataclass(frozen=True)
class Endpoint:
    name: str
    model: str
    version: int
    version_id: str
    previous_version: int | None
    generation: int
    contract_mode: str
    latency_slo_ms: float | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    canary_version: int | None = None
    canary_weight: float = 0.0
    routing: str = "random"
    shadow_versions: tuple[int, ...] = ()
    stopped_at: datetime | None = None
    stop_reason: str | None = None
    fallback_version: int | None = None
    previous_version_id: str | None = None
    # Its overrides of the server's serving limits (None: the server's).
    limits: EndpointLimits = EndpointLimits()

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def arms(self) -> list[tuple[int, str, float]]:
        """Every part a version plays in the plan, as (version, role, share of callers'
        traffic in %): primary, canary, shadows (copies only: 0) and the fallback
        (everything while stopped, else 0)."""
        canary = self.canary_weight if self.canary_version is not None else 0.0
        out = [(self.version, "primary", 100.0 - canary)]
        if self.canary_version is not None:
            out.append((self.canary_version, "canary", canary))
        out.extend((n, "shadow", 0.0) for n in self.shadow_versions)
        if self.fallback_version is not None:
            out.append((self.fallback_version, "fallback", 100.0 if self.stopped else 0.0))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "version": self.version,
            "previous_version": self.previous_version,
            "generation": self.generation,
            "contract_mode": self.contract_mode,
            "latency_slo_ms": self.latency_slo_ms,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "traffic": {
                "primary": self.version,
                "canary": self.canary_version,
                "canary_weight": self.canary_weight if self.canary_version else 0.0,
                "routing": self.routing,
                "shadows": list(self.shadow_versions),
            },
            "stopped": self.stopped,
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "stop_reason": self.stop_reason,
            "fallback_version": self.fallback_version,
            "limits": self.limits.to_dict(),
        }


def _endpoint_query() -> Any:
    previous = versions.alias("previous")
    canary = versions.alias("canary")
    fallback = versions.alias("fallback")
    return (
        select(
            endpoints.c.name,
            models.c.name.label("model"),
            versions.c.number.label("version"),
            endpoints.c.version_id,
            previous.c.number.label("previous_version"),
            endpoints.c.generation,
            endpoints.c.contract_mode,
            endpoints.c.latency_slo_ms,
            endpoints.c.created_by,
            endpoints.c.created_at,
            endpoints.c.updated_at,
            canary.c.number.label("canary_version"),
            endpoints.c.canary_weight,
            endpoints.c.routing,
            endpoints.c.shadow_version_ids,
            endpoints.c.stopped_at,
            endpoints.c.stop_reason,
            fallback.c.number.label("fallback_version"),
            endpoints.c.previous_version_id,
            *(endpoints.c[name] for name in LIMIT_NAMES),
        )
        .join(models, models.c.id == endpoints.c.model_id)
        .join(versions, versions.c.id == endpoints.c.version_id)
        .outerjoin(previous, previous.c.id == endpoints.c.previous_version_id)
        .outerjoin(canary, canary.c.id == endpoints.c.canary_version_id)
        .outerjoin(fallback, fallback.c.id == endpoints.c.fallback_version_id)
    )


def _endpoints_of(conn: Connection, rows: Any) -> list[Endpoint]:
    """Rows of :func:`_endpoint_query` to endpoints (shadow version ids to numbers)."""
    rows = list(rows)
    shadow_ids = {i for r in rows for i in r.shadow_version_ids or []}
    numbers: dict[str, int] = {}
    if shadow_ids:
        found = conn.execute(
            select(versions.c.id, versions.c.number).where(versions.c.id.in_(shadow_ids))
        )
        numbers = {r.id: r.number for r in found}
    out = []
    for row in rows:
        data = row._asdict()
        ids = data.pop("shadow_version_ids") or []
        data["shadow_versions"] = tuple(numbers[i] for i in ids if i in numbers)
        data["limits"] = EndpointLimits(**{name: data.pop(name) for name in LIMIT_NAMES})
        out.append(Endpoint(**data))
    return out


def _audit_deploy(
    conn: Any,
    actor: Actor,
    name: str,
    target: Version,
    before_id: str | None,
    generation: int,
    mode: str,
    breaking_changes: list[dict[str, Any]],
    reason: str,
    gated: Mapping[str, Any],
) -> None:
    after: dict[str, Any] = {
        "model": target.model,
        "version": target.number,
        "version_id": target.id,
        "artifact_sha256": target.artifact_sha256,
        "generation": generation,
        "contract_mode": mode,
    }
    if breaking_changes:
        after["breaking_changes"] = breaking_changes
    after.update(gated)
    append(
        conn,
        actor,
        "endpoint.deploy",
        target_kind="endpoint",
        target=name,
        before={"version_id": before_id} if before_id else None,
        after=after,
        reason=reason,
    )


CONTRACT_MODES = ("reject", "partial")
# Called in the deploy's transaction: (connection, endpoint, version, latency SLO).
DeployHook = Callable[[Connection, str, Version, float | None], None]
# Asked before a deploy, rollout start or promote changes anything: (action, endpoint,
# target version, the current primary's version id or None, actor). A gate refuses by
# raising (governance's policies raise PolicyBlocked) and returns what the action's audit
# event should record, or None. Serving knows no gate: the runtime installs them.
# Rollback is deliberately not gated: going back to the previous version must always work.
Gate = Callable[[str, str, Version, str | None, Actor], Mapping[str, Any] | None]


class EndpointService:
    def __init__(self, engine: Engine, version_service: VersionService, pool: PredictorPool):
        self.engine = engine
        self.versions = version_service
        self.pool = pool
        # What else a deploy sets up atomically with it (monitoring's default monitors).
        self.deploy_hooks: builtins.list[DeployHook] = []
        self.gates: builtins.list[Gate] = []

    def list(self) -> list[Endpoint]:
        with self.engine.connect() as conn:
            return _endpoints_of(conn, conn.execute(_endpoint_query().order_by(endpoints.c.name)))

    def get(self, name: str) -> Endpoint:
        with self.engine.connect() as conn:
            found = _endpoints_of(
                conn, conn.execute(_endpoint_query().where(endpoints.c.name == name))
            )
        if not found:
            raise NotFound(f"endpoint {name!r} not found")
        return found[0]

    def deploy(
        self,
        name: str,
        *,
        model: str,
        version: int,
        actor: Actor,
        contract_mode: str | None = None,
        allow_breaking: bool = False,
        reason: str = "",
        latency_slo_ms: float | None = None,
        limits: Mapping[str, Any] | None = None,
    ) -> Endpoint:
        """Point ``name`` at ``model`` version ``version`` (creating the endpoint).

        A version whose input contract would refuse data the current version accepts
        (a breaking change) needs ``allow_breaking`` and a ``reason``; both are audited.
        ``latency_slo_ms`` sets the p99 objective the latency monitor holds it to.
        ``limits`` sets serving limits as :meth:`set_limits` does (those not named keep
        their value), in the deploy's transaction.
        The gates (policies) are asked first; a refusal raises before anything loads.
        """
        check_slug(name)
        limit_changes = check_limits(limits or {})
        if contract_mode not in (None, *CONTRACT_MODES):
            raise ValidationFailed.field("contract_mode", f"must be one of {CONTRACT_MODES}")
        if latency_slo_ms is not None and (
            isinstance(latency_slo_ms, bool)
            or not isinstance(latency_slo_ms, int | float)
            or not 0 < latency_slo_ms <= 600_000
        ):
            raise ValidationFailed.field("latency_slo_ms", "must be a number of ms in (0, 600000]")
        target = self.versions.get(model, version)
        if target.status != "ready":
            why = f": {target.status_reason}" if target.status_reason else ""
            raise Conflict(
                f"version {target.number} of {model!r} is {target.status}, not ready{why}"
            )
        current = self._current(name)
        mode = contract_mode or (current[1] if current else "reject")
        # A redeploy of the current version is gated too: it re-points all traffic.
        gated = self.check_gates("deploy", name, target, current[0] if current else None, actor)
        breaking_changes = self.breaking_changes(
            current[0] if current else None, target, allow_breaking, reason
        )
        # Load before touching the store: a broken or tampered artifact raises here and
        # nothing changes.
        self.pool.load(name, target, 0, mode)
        self._write(
            name,
            target,
            actor,
            mode,
            breaking_changes,
            reason,
            latency_slo_ms,
            gated,
            limit_changes,
        )
        self.sync(name)
        return self.get(name)

    def check_gates(
        self,
        action: str,
        endpoint: str,
        target: Version,
        current_version_id: str | None,
        actor: Actor,
    ) -> dict[str, Any]:
        """Ask every gate whether ``action`` may put ``target`` on ``endpoint``; raises
        when one refuses, else returns what they add to the action's audit event."""
        details: dict[str, Any] = {}
        for gate in self.gates:
            details.update(gate(action, endpoint, target, current_version_id, actor) or {})
        return details

    def _current(self, name: str) -> tuple[str, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(endpoints.c.version_id, endpoints.c.contract_mode).where(
                    endpoints.c.name == name
                )
            ).first()
        return (row.version_id, row.contract_mode) if row else None

    def breaking_changes(
        self, current_version_id: str | None, target: Version, allow: bool, reason: str
    ) -> builtins.list[dict[str, Any]]:
        """How ``target``'s input contract would refuse what the current version
        accepts; raises unless ``allow`` (with a ``reason``) is given."""
        if current_version_id is None or current_version_id == target.id:
            return []
        from slipway.contracts.diff import breaking, diff

        old = self.versions.get_by_id(current_version_id)
        changes = [
            {"field": c.field, "change": c.what}
            for c in breaking(diff(old.data_contract, target.data_contract))
        ]
        if changes and not allow:
            raise Conflict(
                f"version {target.number} of {target.model!r} would break the endpoint's "
                f"current callers ({len(changes)} breaking contract change(s)); deploy with "
                "allow_breaking and a reason to proceed",
                details=changes,
            )
        if changes and not reason.strip():
            raise ValidationFailed.field("reason", "required when deploying a breaking change")
        return changes

    def _write(
        self,
        name: str,
        target: Version,
        actor: Actor,
        mode: str,
        breaking_changes: builtins.list[dict[str, Any]],
        reason: str,
        latency_slo_ms: float | None,
        gated: Mapping[str, Any],
        limit_changes: Mapping[str, int | float | None],
    ) -> int:
        now = utcnow()
        if limit_changes:
            gated = {**gated, "limits": dict(limit_changes)}
        model_id = self.versions.models.get(target.model).id  # read before the write lock
        with transaction(self.engine) as conn:
            row = conn.execute(
                select(
                    endpoints.c.id,
                    endpoints.c.version_id,
                    endpoints.c.canary_version_id,
                    endpoints.c.generation,
                    endpoints.c.latency_slo_ms,
                ).where(endpoints.c.name == name)
            ).first()
            slo = latency_slo_ms if latency_slo_ms is not None else (row and row.latency_slo_ms)
            for hook in self.deploy_hooks:
                hook(conn, name, target, slo or None)
            if row is None:
                try:
                    conn.execute(
                        endpoints.insert().values(
                            id=new_id(),
                            name=name,
                            model_id=model_id,
                            version_id=target.id,
                            previous_version_id=None,
                            generation=1,
                            contract_mode=mode,
                            latency_slo_ms=latency_slo_ms,
                            created_by=actor.name,
                            created_at=now,
                            updated_at=now,
                            **limit_changes,
                        )
                    )
                except IntegrityError:
                    raise Conflict(f"endpoint {name!r} was created concurrently; retry") from None
                _audit_deploy(conn, actor, name, target, None, 1, mode, [], reason, gated)
                return 1
            generation = int(row.generation) + 1
            previous = row.version_id if row.version_id != target.id else None
            values: dict[str, Any] = {
                "model_id": model_id,
                "version_id": target.id,
                "generation": generation,
                "contract_mode": mode,
                "latency_slo_ms": slo or None,
                "updated_at": now,
                **limit_changes,
            }
            if previous is not None:
                values["previous_version_id"] = previous
            if row.canary_version_id == target.id:  # the canary became the primary
                values.update(canary_version_id=None, canary_weight=0.0)
            conn.execute(endpoints.update().where(endpoints.c.id == row.id).values(**values))
            _audit_deploy(
                conn,
                actor,
                name,
                target,
                row.version_id,
                generation,
                mode,
                breaking_changes,
                reason,
                gated,
            )
            return generation

    def set_limits(self, name: str, *, actor: Actor, reason: str = "", **limits: Any) -> Endpoint:
        """Override the server's serving limits on endpoint ``name``: any of
        ``max_inflight``, ``max_queue``, ``request_timeout_s``, ``batch_max_rows`` and
        ``batch_wait_ms``; ``None`` clears an override (the server's setting applies
        again), limits not named keep their value. Audited as ``endpoint.limits``; the
        generation is bumped so every worker serves with them after its next sync."""
        changes = check_limits(limits)
        if not changes:
            raise ValidationFailed.field("limits", f"give at least one of {', '.join(LIMIT_NAMES)}")
        with transaction(self.engine) as conn:
            # Locked (PostgreSQL; SQLite's write lock is whole-store): concurrent changes
            # each see the other's limits and generation, and audit what they replaced.
            row = conn.execute(
                select(endpoints).where(endpoints.c.name == name).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"endpoint {name!r} not found")
            before = EndpointLimits.of_row(row).to_dict()
            after = {**before, **changes}
            if after != before:
                generation = int(row.generation) + 1
                conn.execute(
                    endpoints.update()
                    .where(endpoints.c.id == row.id)
                    .values(**changes, generation=generation, updated_at=utcnow())
                )
                append(
                    conn,
                    actor,
                    "endpoint.limits",
                    target_kind="endpoint",
                    target=name,
                    before=before,
                    after={**after, "generation": generation},
                    reason=reason,
                )
        self.sync(name)
        return self.get(name)

    def sync(self, name: str | None = None) -> None:
        """Bring this process's pool in line with the store (other workers' deploys and
        plan changes, restarts), for every endpoint or one. Failures leave the current
        route serving."""
        query = select(endpoints)
        if name is not None:
            query = query.where(endpoints.c.name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        changed = False
        for row in rows:
            if self.pool.generation(row.name) >= row.generation:
                continue
            try:
                plan = self._plan(row)
            except NotFound:
                continue
            self.pool.ensure(row.name, plan, row.generation, row.contract_mode)
            changed = True
        if changed and name is None:
            self.pool.evict(keep={r.previous_version_id for r in rows if r.previous_version_id})

    def _plan(self, row: Any) -> Plan:
        def version(version_id: str | None) -> Version | None:
            return self.versions.get_by_id(version_id) if version_id else None

        primary = self.versions.get_by_id(row.version_id)
        return Plan(
            primary=primary,
            canary=version(row.canary_version_id),
            weight=float(row.canary_weight or 0.0),
            routing=row.routing,
            shadows=tuple(self.versions.get_by_id(i) for i in row.shadow_version_ids or []),
            stopped=row.stopped_at is not None,
            stop_reason=row.stop_reason or "",
            fallback=version(row.fallback_version_id),
            previous=version(row.previous_version_id),
            limits=EndpointLimits.of_row(row),
        )

    def deployed_names(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(endpoints.c.name)).scalars())

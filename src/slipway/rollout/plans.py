"""Changing an endpoint's traffic plan: canary and shadows by hand, rollback, stop switch.

Every change is one transaction that updates the endpoint row, bumps its generation
(every worker polls that one integer and swaps its route within ``sync_interval_s``,
1 s by default) and appends an audit event with the plan before and after. Versions a
change routes to are loaded first, so one that cannot load changes nothing; the process
that made the change swaps its own route at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, select

from slipway.audit import Actor, append
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.ids import utcnow
from slipway.registry.versions import Version
from slipway.serving.endpoints import Endpoint, EndpointService
from slipway.serving.routing import ROUTING_MODES
from slipway.store.engine import transaction
from slipway.store.tables import endpoints, rollouts

ACTIVE_STATES = ("pending", "running", "paused")
MAX_SHADOWS = 5
# The plan columns an audit event shows before and after a change.
_PLAN_COLUMNS = (
    "version_id",
    "previous_version_id",
    "canary_version_id",
    "canary_weight",
    "routing",
    "shadow_version_ids",
    "stopped_at",
    "stop_reason",
    "fallback_version_id",
)


def active_rollout(conn: Connection, endpoint: str) -> Any:
    """The endpoint's rollout that is pending, running or paused (a row), or None."""
    return conn.execute(
        select(rollouts).where(rollouts.c.endpoint == endpoint, rollouts.c.state.in_(ACTIVE_STATES))
    ).first()


def refuse_under_rollout(conn: Connection, endpoint: str, doing: str) -> None:
    """While a rollout is pending, running or paused it owns the endpoint's plan."""
    running = active_rollout(conn, endpoint)
    if running is not None:
        raise Conflict(
            f"endpoint {endpoint!r} is under rollout {running.id} ({running.state}); "
            f"promote or abort it {doing}"
        )


def check_weight(weight: Any, field: str = "weight") -> float:
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not math.isfinite(weight)
        or not 0 <= weight <= 100
    ):
        raise ValidationFailed.field(field, "must be a percentage from 0 to 100")
    return float(weight)


def check_routing(routing: str) -> str:
    if routing not in ROUTING_MODES:
        raise ValidationFailed.field("routing", f"must be one of {', '.join(ROUTING_MODES)}")
    return routing


class PlanService:
    def __init__(self, engine: Engine, endpoint_service: EndpointService) -> None:
        self.engine = engine
        self.endpoints = endpoint_service
        self.versions = endpoint_service.versions
        self.pool = endpoint_service.pool

    # --- the one way a plan changes ---------------------------------------------------

    def write(
        self,
        conn: Connection,
        name: str,
        changes: dict[str, Any],
        *,
        actor: Actor,
        action: str,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Apply ``changes`` to endpoint ``name`` in ``conn``'s transaction, bump its
        generation and audit ``action``; returns the new generation."""
        row = conn.execute(select(endpoints).where(endpoints.c.name == name)).first()
        if row is None:
            raise NotFound(f"endpoint {name!r} not found")
        before = {c: _plain(getattr(row, c)) for c in _PLAN_COLUMNS}
        generation = int(row.generation) + 1
        conn.execute(
            endpoints.update()
            .where(endpoints.c.id == row.id)
            .values(**changes, generation=generation, updated_at=utcnow())
        )
        after = {**before, **{c: _plain(v) for c, v in changes.items() if c in _PLAN_COLUMNS}}
        append(
            conn,
            actor,
            action,
            target_kind="endpoint",
            target=name,
            before=before,
            after={**after, "generation": generation, **(details or {})},
            reason=reason,
        )
        return generation

    def _commit(
        self,
        name: str,
        changes: dict[str, Any],
        *,
        actor: Actor,
        action: str,
        reason: str,
        refuse_during_rollout: bool = True,
        details: dict[str, Any] | None = None,
    ) -> Endpoint:
        with transaction(self.engine) as conn:
            if refuse_during_rollout:
                refuse_under_rollout(conn, name, "first")
            self.write(
                conn, name, changes, actor=actor, action=action, reason=reason, details=details
            )
        self.endpoints.sync(name)
        return self.endpoints.get(name)

    # --- by hand ----------------------------------------------------------------------

    def set_traffic(
        self,
        name: str,
        *,
        canary: int | None,
        weight: float,
        routing: str,
        shadows: Sequence[int],
        actor: Actor,
        reason: str = "",
    ) -> Endpoint:
        """Set the canary (with its weight) and the shadows by hand. While a rollout
        runs, the rollout owns the plan and this is refused."""
        weight = check_weight(weight)
        check_routing(routing)
        if canary is None and weight:
            raise ValidationFailed.field("weight", "must be 0 without a canary")
        if len(shadows) > MAX_SHADOWS:
            raise ValidationFailed.field("shadows", f"at most {MAX_SHADOWS}")
        if len(set(shadows)) != len(shadows):
            raise ValidationFailed.field("shadows", "must not repeat a version")
        current = self.endpoints.get(name)
        taken = {current.version: "the primary"}
        target = None
        if canary is not None:
            target = self._loadable(current, canary, "canary", taken)
            taken[canary] = "the canary"
        shadow_versions = [
            self._loadable(current, n, f"shadows[{i}]", taken) for i, n in enumerate(shadows)
        ]
        # A canary set by hand answers callers as a rollout's canary would: it passes the
        # same gates (policies, as "rollout_start"). Shadows answer no caller: not gated.
        gated: dict[str, Any] = {}
        if target is not None:
            gated = self.endpoints.check_gates(
                "rollout_start", name, target, current.version_id, actor
            )
        changes = {
            "canary_version_id": target.id if target else None,
            "canary_weight": weight if target else 0.0,
            "routing": routing,
            "shadow_version_ids": [v.id for v in shadow_versions],
        }
        return self._commit(
            name, changes, actor=actor, action="endpoint.traffic", reason=reason, details=gated
        )

    def rollback(self, name: str, *, actor: Actor, reason: str = "") -> Endpoint:
        """Back to safety in one call. Under a rollout: the rollout is rolled back (all
        traffic to the primary). Otherwise the previous primary serves again; it is
        kept loaded, so this works when the current version is broken or its artifact
        is gone."""
        current = self.endpoints.get(name)
        # Load (normally: find loaded) the previous primary before the write transaction.
        target = None
        if current.previous_version_id is not None:
            target = self.versions.get_by_id(current.previous_version_id)
            self.pool.load(name, target, 0, current.contract_mode)
        with transaction(self.engine) as conn:
            running = active_rollout(conn, name)
            if running is not None:
                end_rollout(
                    conn, running, "rolled_back", f"rolled back by {actor.name}" + _why(reason)
                )
                changes: dict[str, Any] = {"canary_version_id": None, "canary_weight": 0.0}
            else:
                row = conn.execute(select(endpoints).where(endpoints.c.name == name)).one()
                if target is None or row.previous_version_id != target.id:
                    raise Conflict(
                        f"endpoint {name!r} has no previous version to roll back to"
                        if target is None
                        else f"endpoint {name!r} changed meanwhile; try again"
                    )
                changes = {
                    "model_id": self.versions.models.get(target.model).id,
                    "version_id": target.id,
                    "previous_version_id": row.version_id,
                    "canary_version_id": None,
                    "canary_weight": 0.0,
                }
            self.write(
                conn,
                name,
                changes,
                actor=actor,
                action="endpoint.rollback",
                reason=reason,
                details={"rollout": running.id} if running is not None else None,
            )
        self.endpoints.sync(name)
        return self.endpoints.get(name)

    def stop(
        self, name: str, *, actor: Actor, reason: str, fallback: int | None = None
    ) -> Endpoint:
        """Stop serving: callers get 503 ``endpoint_stopped`` (or ``fallback``'s answers)
        until :meth:`resume`. Survives restarts; stopping again updates reason and
        fallback.

        Stopping is never gated (it must work in an incident), and neither is falling
        back to the current or the previous primary; any other fallback answers every
        caller, so it passes the gates as a deploy would."""
        if not reason.strip():
            raise ValidationFailed.field("reason", "required: say why the endpoint is stopped")
        current = self.endpoints.get(name)
        target = None
        gated: dict[str, Any] = {}
        if fallback is not None:
            target = self._loadable(current, fallback, "fallback_version", {})
            if target.id not in (current.version_id, current.previous_version_id):
                gated = self.endpoints.check_gates(
                    "deploy", name, target, current.version_id, actor
                )
        changes = {
            "stopped_at": current.stopped_at or utcnow(),
            "stop_reason": reason,
            "fallback_version_id": target.id if target else None,
        }
        return self._commit(
            name,
            changes,
            actor=actor,
            action="endpoint.stop",
            reason=reason,
            refuse_during_rollout=False,
            details=gated,
        )

    def resume(self, name: str, *, actor: Actor, reason: str = "") -> Endpoint:
        if not self.endpoints.get(name).stopped:
            raise Conflict(f"endpoint {name!r} is not stopped")
        changes = {"stopped_at": None, "stop_reason": None, "fallback_version_id": None}
        return self._commit(
            name,
            changes,
            actor=actor,
            action="endpoint.resume",
            reason=reason,
            refuse_during_rollout=False,
        )

    def _loadable(
        self, endpoint: Endpoint, number: int, field: str, taken: dict[int, str]
    ) -> Version:
        """Version ``number`` of the endpoint's model, ready and loaded in this process."""
        if number in taken:
            raise ValidationFailed.field(field, f"version {number} is already {taken[number]}")
        try:
            version = self.versions.get(endpoint.model, number)
        except NotFound:
            raise ValidationFailed.field(
                field, f"model {endpoint.model!r} has no version {number}"
            ) from None
        if version.status != "ready":
            raise ValidationFailed.field(field, f"version {number} is {version.status}, not ready")
        self.pool.load(endpoint.name, version, 0, endpoint.contract_mode)
        return version


def end_rollout(conn: Connection, row: Any, state: str, decision: str) -> None:
    """Mark rollout ``row`` finished (``state``) in ``conn``'s transaction."""
    now = utcnow()
    conn.execute(
        rollouts.update()
        .where(rollouts.c.id == row.id)
        .values(
            state=state,
            decision=decision,
            revision=row.revision + 1,
            updated_at=now,
            finished_at=now,
        )
    )


def _why(reason: str) -> str:
    return f": {reason}" if reason else ""


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value

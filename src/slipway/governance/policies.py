"""Policies as code: stored and versioned, audited on change, checked on deploy, rollout
start and promote.

A policy (``policy_spec.py`` has the language) applies to an action on an endpoint when
the endpoint's name matches one of its patterns and the action is in its ``on`` list.
Every applicable policy's checks run against the target version; one failed check
blocks the action, and :class:`~slipway.errors.PolicyBlocked` lists every failed check
of every policy with its reason. An endpoint no policy applies to is not gated (no
deny-by-default on installs without policies, as before policies existed).

``policy_checks.py`` says what each check decides. The report of an allowed action goes
into that action's own audit event; a blocked one is audited as ``policy.blocked``.

Checks run just before the action's write transaction, not inside it: what changes in
the milliseconds between (a new evaluation record, a policy edited) is judged by the
next gated action, not this one. Evidence is append-only and every step up of a rollout
and every promotion is checked again, so the window cannot carry a version further.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from slipway.audit import Actor, append
from slipway.errors import Conflict, NotFound, PolicyBlocked, ValidationFailed
from slipway.governance.approvals import ApprovalService
from slipway.governance.evaluations import EvaluationService
from slipway.governance.policy_checks import CheckResult, Subject, run_check
from slipway.governance.policy_spec import ACTIONS, PolicySpec, parse_policy
from slipway.ids import utcnow
from slipway.registry.models import check_slug
from slipway.registry.versions import Version, VersionService
from slipway.store.engine import transaction
from slipway.store.tables import endpoints, policies

__all__ = ["CheckResult", "Policy", "PolicyReport", "PolicyResult", "PolicyService"]

_ACTION_LABELS = {"deploy": "deploy", "rollout_start": "rollout start", "promote": "promote"}


@dataclass(frozen=True)
class Policy:
    name: str
    revision: int
    source: str
    spec: PolicySpec
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "description": self.spec.description,
            "source": self.source,
            "spec": self.spec.to_dict(),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_by": self.updated_by,
            "updated_at": self.updated_at.isoformat(),
        }


def _policy(row: Any) -> Policy:
    return Policy(
        name=row.name,
        revision=row.revision,
        source=row.source,
        spec=PolicySpec.from_dict(row.name, row.spec),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True)
class PolicyResult:
    name: str
    revision: int
    checks: tuple[CheckResult, ...]

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "allowed": not self.failed,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class PolicyReport:
    """Every applicable policy's checks for one action on one version."""

    endpoint: str
    model: str
    version: int
    action: str
    policies: tuple[PolicyResult, ...]

    @property
    def allowed(self) -> bool:
        return all(not p.failed for p in self.policies)

    def failures(self) -> list[dict[str, str]]:
        """Every failed check as an error detail: ``{"field": "<policy>.<check>", ...}``."""
        return [
            {"field": f"{p.name}.{c.id}", "reason": c.reason}
            for p in self.policies
            for c in p.failed
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "endpoint": self.endpoint,
            "model": self.model,
            "version": self.version,
            "action": self.action,
            "policies": [p.to_dict() for p in self.policies],
        }

    def audit_summary(self) -> dict[str, Any]:
        """What the action's own audit event records: the policy revisions that allowed
        it and each check's reason (the evidence it was allowed on)."""
        return {"allowed": self.allowed, "policies": [p.to_dict() for p in self.policies]}


def _check_action(action: Any) -> str:
    if action not in ACTIONS:
        raise ValidationFailed.field("action", f"must be one of {', '.join(ACTIONS)}")
    return str(action)


def _audit_view(policy: Policy) -> dict[str, Any]:
    return {"revision": policy.revision, "source": policy.source}


class PolicyService:
    def __init__(
        self,
        engine: Engine,
        versions: VersionService,
        evaluations: EvaluationService,
        approvals: ApprovalService,
    ) -> None:
        self.engine = engine
        self.versions = versions
        self.evaluations = evaluations
        self.approvals = approvals

    # -- the policies ------------------------------------------------------------------

    def put(self, name: str, source: str, *, actor: Actor) -> Policy:
        """Create policy ``name`` from YAML ``source``, or replace it (revision + 1).
        The same source again changes nothing."""
        check_slug(name)
        spec = parse_policy(name, source)
        now = utcnow()
        try:
            with transaction(self.engine) as conn:
                row = conn.execute(select(policies).where(policies.c.name == name)).first()
                if row is None:
                    values = {
                        "name": name,
                        "revision": 1,
                        "source": source,
                        "spec": spec.to_dict(),
                        "created_by": actor.name,
                        "created_at": now,
                        "updated_by": actor.name,
                        "updated_at": now,
                    }
                    conn.execute(policies.insert().values(**values))
                    created = Policy(name, 1, source, spec, actor.name, now, actor.name, now)
                    append(
                        conn,
                        actor,
                        "policy.create",
                        target_kind="policy",
                        target=name,
                        after=_audit_view(created),
                    )
                    return created
                before = _policy(row)
                if before.source == source:
                    return before
                # Conditional on the revision read: of two concurrent edits one wins.
                changed = conn.execute(
                    update(policies)
                    .where(policies.c.name == name, policies.c.revision == before.revision)
                    .values(
                        revision=before.revision + 1,
                        source=source,
                        spec=spec.to_dict(),
                        updated_by=actor.name,
                        updated_at=now,
                    )
                ).rowcount
                if changed != 1:
                    raise Conflict(f"policy {name!r} was changed concurrently; try again")
                after = Policy(
                    name,
                    before.revision + 1,
                    source,
                    spec,
                    before.created_by,
                    before.created_at,
                    actor.name,
                    now,
                )
                append(
                    conn,
                    actor,
                    "policy.update",
                    target_kind="policy",
                    target=name,
                    before=_audit_view(before),
                    after=_audit_view(after),
                )
                return after
        except IntegrityError:
            raise Conflict(f"policy {name!r} was created concurrently; try again") from None

    def get(self, name: str) -> Policy:
        with self.engine.connect() as conn:
            row = conn.execute(select(policies).where(policies.c.name == name)).first()
        if row is None:
            raise NotFound(f"policy {name!r} not found")
        return _policy(row)

    def list(self) -> builtins.list[Policy]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(policies).order_by(policies.c.name)).all()
        return [_policy(r) for r in rows]

    def delete(self, name: str, *, actor: Actor) -> None:
        with transaction(self.engine) as conn:
            row = conn.execute(select(policies).where(policies.c.name == name)).first()
            if row is None:
                raise NotFound(f"policy {name!r} not found")
            conn.execute(policies.delete().where(policies.c.name == name))
            append(
                conn,
                actor,
                "policy.delete",
                target_kind="policy",
                target=name,
                before=_audit_view(_policy(row)),
            )

    def applicable(self, endpoint: str, action: str) -> builtins.list[Policy]:
        """The policies checked when ``action`` is taken on ``endpoint``, by name."""
        _check_action(action)
        return [p for p in self.list() if p.spec.applies(endpoint, action)]

    # -- checking ----------------------------------------------------------------------

    def evaluate(
        self, model: str, number: int, *, endpoint: str, action: str = "deploy"
    ) -> PolicyReport:
        """The dry run: what ``action`` of version ``number`` on ``endpoint`` would meet,
        compared with the endpoint's current primary. Changes nothing."""
        check_slug(endpoint, "endpoint")
        _check_action(action)
        target = self.versions.get(model, number)
        with self.engine.connect() as conn:
            current = conn.execute(
                select(endpoints.c.version_id).where(endpoints.c.name == endpoint)
            ).scalar()
        return self._report(endpoint, target, action, current)

    def enforce(
        self,
        endpoint: str,
        target: Version,
        action: str,
        current_version_id: str | None,
        *,
        actor: Actor,
    ) -> PolicyReport:
        """Check ``action`` of ``target`` on ``endpoint`` (whose primary is
        ``current_version_id``); raise PolicyBlocked listing every failed check, after
        auditing the refusal as ``policy.blocked``."""
        _check_action(action)
        report = self._report(endpoint, target, action, current_version_id)
        if report.allowed:
            return report
        failures = report.failures()
        names = ", ".join(p.name for p in report.policies if p.failed)
        message = (
            f"{_ACTION_LABELS[action]} of {target.model} version {target.number} to "
            f"{endpoint!r} blocked by policy {names}: {len(failures)} check(s) failed"
        )
        with transaction(self.engine) as conn:
            append(
                conn,
                actor,
                "policy.blocked",
                target_kind="endpoint",
                target=endpoint,
                after=report.to_dict(),
                reason=message,
            )
        raise PolicyBlocked(message, details=failures)

    def gate(
        self,
        action: str,
        endpoint: str,
        target: Version,
        current_version_id: str | None,
        actor: Actor,
    ) -> dict[str, Any] | None:
        """An endpoint gate (``EndpointService.gates``): raises when blocked; returns
        what the action's audit event records about the policies that allowed it."""
        report = self.enforce(endpoint, target, action, current_version_id, actor=actor)
        return {"policy": report.audit_summary()} if report.policies else None

    def _report(
        self, endpoint: str, target: Version, action: str, current_version_id: str | None
    ) -> PolicyReport:
        subject = Subject(
            self.versions,
            self.evaluations,
            self.approvals,
            endpoint=endpoint,
            action=action,
            target=target,
            current_version_id=current_version_id,
        )
        results = tuple(
            PolicyResult(p.name, p.revision, tuple(run_check(subject, c) for c in p.spec.checks))
            for p in self.applicable(endpoint, action)
        )
        return PolicyReport(endpoint, target.model, target.number, action, results)

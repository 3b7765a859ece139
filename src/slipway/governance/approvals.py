"""Approvals: a request for a version, then one decision with a required rationale.

An approval is bound to the evidence it was decided on — the artifact's hash, the data
contract's hash and the evaluation record's digest. When any of them differs from the
version's current evidence (a new evaluation was recorded), the approval is *stale* and
no policy counts it. Separation of duties: whoever registered a version cannot decide on
it. Every request and decision is audited.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from slipway.audit import Actor, append, canonical_json
from slipway.errors import Conflict, Forbidden, NotFound, ValidationFailed
from slipway.governance.evaluations import EvaluationService
from slipway.governance.statements import statement
from slipway.ids import new_id, utcnow
from slipway.registry.versions import Version, VersionService
from slipway.store.engine import transaction
from slipway.store.tables import approvals, versions

# superseded: the evidence changed while the request was pending, so nobody may decide
# on it any more (what a decider would see is not what was asked for); request again.
STATES = ("pending", "approved", "rejected", "superseded")


@dataclass(frozen=True)
class Binding:
    """The evidence an approval is bound to."""

    artifact_sha256: str
    contract_sha256: str
    evaluation_digest: str | None

    def differences(self, current: Binding) -> list[str]:
        """What changed between this binding and ``current`` (empty: still bound)."""
        names = {
            "artifact_sha256": "artifact",
            "contract_sha256": "contract",
            "evaluation_digest": "evaluation record",
        }
        return [
            label for key, label in names.items() if getattr(self, key) != getattr(current, key)
        ]


def contract_sha256(version: Version) -> str:
    return hashlib.sha256(canonical_json(version.data_contract.to_dict())).hexdigest()


@dataclass(frozen=True)
class Approval:
    id: str
    model: str
    version: int
    version_id: str
    state: str
    requested_by: str
    requested_at: datetime
    request_note: str
    decided_by: str | None
    decided_at: datetime | None
    rationale: str | None
    decider_roles: list[str] | None
    artifact_sha256: str
    contract_sha256: str
    evaluation_digest: str | None

    @property
    def binding(self) -> Binding:
        return Binding(self.artifact_sha256, self.contract_sha256, self.evaluation_digest)

    def to_dict(self, current: Binding | None = None) -> dict[str, Any]:
        """As the API shows it; with ``current``, whether the approval is still bound to
        the version's evidence (``valid``) and what changed (``stale_because``)."""
        out: dict[str, Any] = {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "state": self.state,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at.isoformat(),
            "request_note": self.request_note,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "rationale": self.rationale,
            "decider_roles": self.decider_roles,
            "binding": {
                "artifact_sha256": self.artifact_sha256,
                "contract_sha256": self.contract_sha256,
                "evaluation_digest": self.evaluation_digest,
            },
        }
        if current is not None:
            changed = self.binding.differences(current)
            out["stale_because"] = [f"{c} changed" for c in changed]
            out["valid"] = self.state == "approved" and not changed
        return out


def _approval(row: Any) -> Approval:
    return Approval(**row._asdict())


def _supersede(conn: Any, pending: Approval, changed: Sequence[str], actor: Actor) -> None:
    """Close ``pending`` as superseded (its evidence changed), audited, in ``conn``'s
    transaction; a no-op if it was decided meanwhile."""
    why = f"the {', '.join(changed)} changed since the request"
    done = conn.execute(
        update(approvals)
        .where(approvals.c.id == pending.id, approvals.c.state == "pending")
        .values(state="superseded", decided_at=utcnow(), rationale=why)
    ).rowcount
    if done == 1:
        append(
            conn,
            actor,
            "approval.supersede",
            target_kind="version",
            target=f"{pending.model}/{pending.version}",
            before={"state": "pending", "id": pending.id},
            after={"state": "superseded", "id": pending.id},
            reason=why,
        )


class ApprovalService:
    def __init__(
        self, engine: Engine, versions: VersionService, evaluations: EvaluationService
    ) -> None:
        self.engine = engine
        self.versions = versions
        self.evaluations = evaluations

    def binding_of(self, version: Version) -> Binding:
        """The version's evidence as it is now."""
        evaluation = self.evaluations.current(version)
        return Binding(
            version.artifact_sha256,
            contract_sha256(version),
            evaluation.digest if evaluation is not None else None,
        )

    def request(self, model: str, number: int, *, actor: Actor, note: str = "") -> Approval:
        """Ask for an approval of version ``number``; one pending request per version."""
        clean_note = statement(note, "note", required=False)
        version = self.versions.get(model, number)
        if version.status != "ready":
            raise Conflict(f"version {number} of {model!r} is {version.status}, not ready")
        binding = self.binding_of(version)
        now = utcnow()
        row: dict[str, Any] = {
            "id": new_id(),
            "model": model,
            "version_id": version.id,
            "version": version.number,
            "state": "pending",
            "requested_by": actor.name,
            "requested_at": now,
            "request_note": clean_note,
            "decided_by": None,
            "decided_at": None,
            "rationale": None,
            "decider_roles": None,
            "artifact_sha256": binding.artifact_sha256,
            "contract_sha256": binding.contract_sha256,
            "evaluation_digest": binding.evaluation_digest,
        }
        with transaction(self.engine) as conn:
            # Lock the version's row so two concurrent requests cannot both see "no
            # pending request" (PostgreSQL; SQLite's write transactions are serial).
            conn.execute(select(versions.c.id).where(versions.c.id == version.id).with_for_update())
            found = conn.execute(
                select(approvals).where(
                    approvals.c.version_id == version.id, approvals.c.state == "pending"
                )
            ).first()
            if found is not None:
                pending = _approval(found)
                changed = pending.binding.differences(binding)
                if not changed:
                    raise Conflict(
                        f"version {number} of {model!r} already has a pending request {pending.id}"
                    )
                _supersede(conn, pending, changed, actor)
            conn.execute(approvals.insert().values(**row))
            approval = Approval(**row)
            append(
                conn,
                actor,
                "approval.request",
                target_kind="version",
                target=f"{model}/{version.number}",
                after=approval.to_dict(),
                reason=clean_note,
            )
        return approval

    def decide(
        self,
        approval_id: str,
        *,
        approve: bool,
        rationale: str,
        actor: Actor,
        roles: Sequence[str],
    ) -> Approval:
        """Approve or reject a pending request. ``roles`` are the decider's roles on the
        model (what policies count). When the version's evidence changed since the
        request, nobody may decide on it: it is superseded (Conflict), and the new
        evidence needs a new request."""
        why = statement(rationale, "rationale")
        current = self.get(approval_id)
        if current.state != "pending":
            raise Conflict(f"approval {approval_id} is already {current.state}")
        version = self.versions.get_by_id(current.version_id)
        if actor.name == version.created_by:
            raise Forbidden(
                f"separation of duties: {actor.name} registered version {version.number} of "
                f"{version.model!r} and cannot decide on its approval"
            )
        binding = self.binding_of(version)
        changed = current.binding.differences(binding)
        if changed:
            with transaction(self.engine) as conn:
                _supersede(conn, current, changed, actor)
            raise Conflict(
                f"the {', '.join(changed)} of version {version.number} of {version.model!r} "
                f"changed since approval {approval_id} was requested; it is superseded: "
                "request an approval of the current evidence"
            )
        state = "approved" if approve else "rejected"
        now = utcnow()
        values = {
            "state": state,
            "decided_by": actor.name,
            "decided_at": now,
            "rationale": why,
            "decider_roles": sorted(set(roles)),
            "artifact_sha256": binding.artifact_sha256,
            "contract_sha256": binding.contract_sha256,
            "evaluation_digest": binding.evaluation_digest,
        }
        with transaction(self.engine) as conn:
            # Conditional on still pending: of two concurrent decisions exactly one wins.
            done = conn.execute(
                update(approvals)
                .where(approvals.c.id == approval_id, approvals.c.state == "pending")
                .values(**values)
            ).rowcount
            if done != 1:
                raise Conflict(f"approval {approval_id} was decided concurrently")
            decided = _approval(
                conn.execute(select(approvals).where(approvals.c.id == approval_id)).one()
            )
            append(
                conn,
                actor,
                f"approval.{'approve' if approve else 'reject'}",
                target_kind="version",
                target=f"{version.model}/{version.number}",
                before={"state": "pending"},
                after=decided.to_dict(),
                reason=why,
            )
        return decided

    def get(self, approval_id: str) -> Approval:
        with self.engine.connect() as conn:
            row = conn.execute(select(approvals).where(approvals.c.id == approval_id)).first()
        if row is None:
            raise NotFound(f"approval {approval_id!r} not found")
        return _approval(row)

    def list(
        self,
        *,
        model: str | None = None,
        version: int | None = None,
        state: str | None = None,
        limit: int | None = 500,
    ) -> builtins.list[Approval]:
        """Approvals, newest request first (the queue: ``state="pending"``)."""
        if state is not None and state not in STATES:
            raise ValidationFailed.field("state", f"must be one of {', '.join(STATES)}")
        query = select(approvals).order_by(approvals.c.requested_at.desc())
        if limit is not None:
            query = query.limit(limit)
        if model is not None:
            query = query.where(approvals.c.model == model)
        if version is not None:
            query = query.where(approvals.c.version == version)
        if state is not None:
            query = query.where(approvals.c.state == state)
        with self.engine.connect() as conn:
            return [_approval(r) for r in conn.execute(query)]

    def of_version(self, version: Version) -> builtins.list[Approval]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(approvals)
                .where(approvals.c.version_id == version.id)
                .order_by(approvals.c.requested_at)
            ).all()
        return [_approval(r) for r in rows]

    def standing(self, version: Version) -> builtins.list[tuple[Approval, builtins.list[str]]]:
        """Each of the version's approvals, oldest request first, with what changed in
        the evidence since it was bound (empty: still bound)."""
        binding = self.binding_of(version)
        return [(a, a.binding.differences(binding)) for a in self.of_version(version)]

    def valid(self, version: Version) -> builtins.list[Approval]:
        """The version's approvals that still count: approved, bound to its current
        evidence."""
        return [a for a, changed in self.standing(version) if a.state == "approved" and not changed]

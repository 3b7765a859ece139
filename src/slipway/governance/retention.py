"""Retention: prediction records and quarantined rows are kept for as long as their
model's risk tier says, then purged; a model under legal hold keeps everything.

What a purge deletes, per model not under hold, with ``cutoff = now - days(risk tier)``:

    prediction_records  created_at   < cutoff   (shadow copies included)
    feedback            predicted_at < cutoff   (labels copy the prediction they judge)
    quarantine          created_at   < cutoff   (whatever its status)

Monitoring windows hold aggregates, not inputs, and roll up by themselves; audit events
are never purged. A purge that deletes anything appends exactly one ``retention.purge``
event, in the same transaction as the deletes, listing per model the tier, the days,
the cutoff and the rows deleted per table, and the held models it skipped. A purge that
finds nothing expired writes no event: the chain records deletions, not idle rounds.

One transaction per purge keeps "one event per run" and "deletes and their event
together or not at all" trivially true. The price: on SQLite other writers (prediction
records included) wait for the purge's commit, which matters only for the first purge of
a large backlog; regular runs delete about one interval's worth of rows.

The server runs the purge job in the worker holding the controller lease (ADR 0013);
purges that still meet (a handover, a purge through the API) queue on a lock (SQLite's
write lock; a transaction-scoped advisory lock on PostgreSQL) and the later one finds
nothing left to delete. The models being purged are locked (``FOR UPDATE``) and re-read under
the lock, so a hold placed while a purge runs waits for it and binds every later purge.
Records of a model missing from the inventory (models are never deleted) are not purged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Connection, Engine, Table, delete, func, or_, select

from slipway.audit import SYSTEM, Actor, append
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.governance.statements import statement
from slipway.ids import utcnow
from slipway.registry.models import RISK_TIERS, Model
from slipway.settings import Settings
from slipway.store.engine import backend_name, transaction
from slipway.store.tables import feedback, models, prediction_records, quarantine

MAX_DAYS = 36_500  # 100 years: past it "now - days" leaves the calendar
# pg_advisory_xact_lock key that serializes purges across workers and replicas.
_PURGE_LOCK = int.from_bytes(b"slw:rtn!", "big") & (2**63 - 1)


@dataclass(frozen=True)
class _Purged:
    """One table a purge deletes from, and the column its age is judged by."""

    name: str
    table: Table
    age: Column[Any]


PURGED = (
    _Purged("prediction_records", prediction_records, prediction_records.c.created_at),
    _Purged("feedback", feedback, feedback.c.predicted_at),
    _Purged("quarantine", quarantine, quarantine.c.created_at),
)
TABLES = tuple(p.name for p in PURGED)


def days_by_tier(source: Settings | Mapping[str, Any]) -> dict[str, int]:
    """Retention days per risk tier, from settings (``retention_days_<tier>``) or a
    ``{tier: days}`` mapping; each must be a whole number of days from 1 to 36,500."""
    out: dict[str, int] = {}
    for tier in RISK_TIERS:
        if isinstance(source, Settings):
            name = f"SLIPWAY_RETENTION_DAYS_{tier.upper()}"
            days = getattr(source, f"retention_days_{tier}", None)
        else:
            name, days = tier, source.get(tier)
        if isinstance(days, bool) or not isinstance(days, int):
            raise ValidationFailed.field(name, f"must be a whole number of days, got {days!r}")
        if not 1 <= days <= MAX_DAYS:
            raise ValidationFailed.field(name, f"must be from 1 to {MAX_DAYS:,} days, got {days}")
        out[tier] = days
    if isinstance(source, Mapping):
        unknown = sorted(set(source) - set(RISK_TIERS))
        if unknown:
            raise ValidationFailed.field(unknown[0], f"not a risk tier ({', '.join(RISK_TIERS)})")
    return out


def _hold_of(model: Model) -> dict[str, Any]:
    """The legal-hold fields of ``model``, as audited before and after a change."""
    return {
        "legal_hold_at": model.legal_hold_at.isoformat() if model.legal_hold_at else None,
        "legal_hold_by": model.legal_hold_by,
        "legal_hold_reason": model.legal_hold_reason,
    }


class RetentionService:
    def __init__(self, engine: Engine, days: Settings | Mapping[str, Any]) -> None:
        self.engine = engine
        self.days = days_by_tier(days)

    # -- purge -------------------------------------------------------------------------

    def plan(self, now: datetime | None = None) -> dict[str, Any]:
        """What :meth:`purge` would delete at ``now`` (default: the current time), per
        model and table, and the held models it would skip; deletes nothing."""
        now = now or utcnow()
        with self.engine.connect() as conn:
            purgeable, held = self._survey(conn, now, lock=False)
        return self._summary(now, purgeable, held, dry_run=True)

    def purge(self, now: datetime | None = None, *, actor: Actor = SYSTEM) -> dict[str, Any]:
        """Delete what is past retention at ``now`` (default: the current time), skipping
        models under legal hold; audit it as one ``retention.purge`` event when anything
        was deleted. Returns the same summary as :meth:`plan`, with the rows actually
        deleted and the event (or None)."""
        now = now or utcnow()
        with transaction(self.engine) as conn:
            if backend_name(self.engine) == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_PURGE_LOCK)))
            purgeable, held = self._survey(conn, now, lock=True)
            for entry in purgeable:
                cutoff = now - timedelta(days=entry["days"])
                for purged in PURGED:
                    result = conn.execute(
                        delete(purged.table).where(
                            purged.table.c.model == entry["model"], purged.age < cutoff
                        )
                    )
                    entry[purged.name] = int(result.rowcount)
            purgeable = [e for e in purgeable if any(e[t] for t in TABLES)]
            summary = self._summary(now, purgeable, held, dry_run=False)
            event = None
            if purgeable:
                after = {k: v for k, v in summary.items() if k != "dry_run"}
                event = append(
                    conn,
                    actor,
                    "retention.purge",
                    target_kind="store",
                    target="retention",
                    after=after,
                    reason="past the retention period of the model's risk tier",
                )
        summary["audit_event"] = {"seq": event["seq"], "id": event["id"]} if event else None
        return summary

    def _survey(
        self, conn: Connection, now: datetime, *, lock: bool
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Models with expired rows that may be purged (with the rows per table), and the
        models under legal hold (with the expired rows they keep).

        Expired rows are counted per tier (one grouped query per tier and table); the
        models found are then read again — under ``FOR UPDATE`` when ``lock`` — so the
        tier and hold a purge acts on are the committed ones."""
        counts: dict[str, dict[str, int]] = {}
        for tier, days in self.days.items():
            cutoff = now - timedelta(days=days)
            for purged in PURGED:
                query = (
                    select(purged.table.c.model, func.count())
                    .select_from(purged.table.join(models, models.c.name == purged.table.c.model))
                    .where(models.c.risk_tier == tier, purged.age < cutoff)
                    .group_by(purged.table.c.model)
                )
                for model, count in conn.execute(query):
                    counts.setdefault(model, dict.fromkeys(TABLES, 0))[purged.name] = int(count)
        query = select(models).where(
            or_(models.c.name.in_(sorted(counts)), models.c.legal_hold_at.is_not(None))
        )
        if lock:
            query = query.with_for_update()
        found = [Model.from_row(r) for r in conn.execute(query.order_by(models.c.name))]
        purgeable: list[dict[str, Any]] = []
        held: list[dict[str, Any]] = []
        for model in found:
            expired = counts.get(model.name, dict.fromkeys(TABLES, 0))
            if model.legal_hold_at is not None:
                held.append(
                    {
                        "model": model.name,
                        "risk_tier": model.risk_tier,
                        "held_at": model.legal_hold_at.isoformat(),
                        "held_by": model.legal_hold_by,
                        "reason": model.legal_hold_reason,
                        "kept": expired,
                    }
                )
                continue
            days = self.days[model.risk_tier]
            purgeable.append(
                {
                    "model": model.name,
                    "risk_tier": model.risk_tier,
                    "days": days,
                    "cutoff": (now - timedelta(days=days)).isoformat(),
                    **expired,
                }
            )
        return purgeable, held

    def _summary(
        self,
        now: datetime,
        purgeable: list[dict[str, Any]],
        held: list[dict[str, Any]],
        *,
        dry_run: bool,
    ) -> dict[str, Any]:
        return {
            "dry_run": dry_run,
            "now": now.isoformat(),
            "days": dict(self.days),
            "models": purgeable,
            "held": held,
            "totals": {t: sum(int(e[t]) for e in purgeable) for t in TABLES},
        }

    # -- legal hold --------------------------------------------------------------------

    def hold(self, name: str, reason: str, *, actor: Actor) -> Model:
        """Put model ``name`` under legal hold: no purge deletes anything of it until it
        is released. Holding a held model is a Conflict (the first hold's reason stands)."""
        reason = statement(reason, "reason", asks="why (it is audited)")
        with transaction(self.engine) as conn:
            current = self._locked(conn, name)
            if current.legal_hold_at is not None:
                raise Conflict(
                    f"model {name!r} is already under legal hold (since "
                    f"{current.legal_hold_at.isoformat()}, by {current.legal_hold_by}: "
                    f"{current.legal_hold_reason})"
                )
            now = utcnow()
            values = {
                "legal_hold_at": now,
                "legal_hold_by": actor.name,
                "legal_hold_reason": reason,
            }
            return self._change(conn, current, values, "model.hold", reason, actor, now)

    def release(self, name: str, reason: str, *, actor: Actor) -> Model:
        """Lift the legal hold of model ``name``; the next purge applies retention to it
        again. Releasing a model that is not held is a Conflict."""
        reason = statement(reason, "reason", asks="why (it is audited)")
        with transaction(self.engine) as conn:
            current = self._locked(conn, name)
            if current.legal_hold_at is None:
                raise Conflict(f"model {name!r} is not under legal hold")
            values = {"legal_hold_at": None, "legal_hold_by": None, "legal_hold_reason": None}
            return self._change(conn, current, values, "model.release", reason, actor, utcnow())

    @staticmethod
    def _locked(conn: Connection, name: str) -> Model:
        row = conn.execute(select(models).where(models.c.name == name).with_for_update()).first()
        if row is None:
            raise NotFound(f"model {name!r} not found")
        return Model.from_row(row)

    @staticmethod
    def _change(
        conn: Connection,
        current: Model,
        values: dict[str, Any],
        action: str,
        reason: str,
        actor: Actor,
        now: datetime,
    ) -> Model:
        conn.execute(
            models.update().where(models.c.id == current.id).values(**values, updated_at=now)
        )
        changed = Model.from_row(
            conn.execute(select(models).where(models.c.id == current.id)).one()
        )
        append(
            conn,
            actor,
            action,
            target_kind="model",
            target=current.name,
            before=_hold_of(current),
            after=_hold_of(changed),
            reason=reason,
        )
        return changed

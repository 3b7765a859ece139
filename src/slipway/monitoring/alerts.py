"""Alerts: monitor breaches become deduplicated alerts, and their delivery outbox.

What ``AlertService.apply`` does with each evaluation::

    breach, nothing firing    -> a firing alert + one pending delivery per matching channel
    breach, already firing    -> the alert's value and evidence updated; nothing sent
    ok, firing                -> resolved + "resolved" deliveries
    ok, nothing firing        -> nothing
    insufficient              -> nothing

Deliveries are written in the same transaction as the alert change (an outbox), so an
alert is never lost between the store and a channel; ``deliver_due`` sends them later,
outside any transaction, with retries and exponential backoff.
"""

from __future__ import annotations

import builtins
import hashlib
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Row, func, select

from slipway.audit import Actor, append
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.ids import new_id, utcnow
from slipway.metrics import ALERT_DELIVERIES, ALERTS_FIRED
from slipway.monitoring.channels import (
    LOG_CHANNEL,
    ChannelService,
    SendResult,
    matching_channels,
    send,
)
from slipway.monitoring.evaluation import Evaluation
from slipway.store.engine import backend_name, transaction
from slipway.store.tables import alert_deliveries, alerts, models

__all__ = ["Alert", "AlertService", "Delivery", "alert_payload", "backoff"]

STATES = ("firing", "resolved")
# Most deliveries one deliver_due call sends; they are claimed CLAIM_CHUNK at a time.
BATCH = 100
CLAIM_CHUNK = 10
# A claimed delivery is hidden from other processes this long; longer than a chunk of
# sends can take (10 x 5 s timeout), so no delivery is sent twice concurrently. If the
# process dies mid-chunk, the delivery is retried after the lease (at least once).
CLAIM_LEASE = timedelta(seconds=120)
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
# Alert columns copied from the evaluation that fires it.
_FROM_EVALUATION = "monitor_id monitor endpoint model version metric subject severity threshold"


@dataclass(frozen=True)
class Delivery:
    id: str
    alert_id: str
    channel: str
    event: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str
    response_status: int | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Delivery:
        return cls(**row._asdict())

    def to_dict(self) -> dict[str, Any]:
        return _iso(asdict(self))


@dataclass(frozen=True)
class Alert:
    id: str
    fingerprint: str
    monitor_id: str
    monitor: str
    endpoint: str
    model: str
    version: int
    metric: str
    subject: str
    severity: str
    state: str
    value: float | None
    threshold: float
    evidence: dict[str, Any]
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    # Loaded by AlertService.get only; None elsewhere.
    deliveries: list[Delivery] | None = None

    @classmethod
    def from_row(cls, row: Row[Any], deliveries: list[Delivery] | None = None) -> Alert:
        return cls(**row._asdict(), deliveries=deliveries)

    def to_dict(self) -> dict[str, Any]:
        out = _iso({f.name: getattr(self, f.name) for f in fields(self) if f.name != "deliveries"})
        if self.deliveries is not None:
            out["deliveries"] = [d.to_dict() for d in self.deliveries]
        return out


def backoff(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failure: 1 s, 2 s, 4 s ... at most 5 min, plus up
    to 10% jitter so deliveries that failed together do not retry in lockstep."""
    base = min(BACKOFF_BASE_S * 2 ** min(max(attempts - 1, 0), 30), BACKOFF_CAP_S)
    return timedelta(seconds=min(base * random.uniform(1.0, 1.1), BACKOFF_CAP_S))


def alert_payload(
    alert: Alert, event: str, owner: dict[str, str], *, note: str = ""
) -> dict[str, Any]:
    """What a channel receives (and the outbox stores) for one alert event."""
    op = str(alert.evidence.get("op", ""))
    copied = "severity endpoint model version monitor metric subject value threshold evidence"
    return {
        "event": event,
        "alert_id": alert.id,
        **{name: getattr(alert, name) for name in copied.split()},
        "op": op,
        "started_at": alert.started_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        **{key: owner.get(key, "") for key in ("owner", "oncall", "runbook_url")},
        "summary": _summary(alert, event, op, note),
    }


def _summary(alert: Alert, event: str, op: str, note: str) -> str:
    """One sentence, e.g. "Warning: psi of age on endpoint churn (model churn v3) is
    0.31, above the threshold 0.2." """
    what = f"{alert.metric} of {alert.subject}" if alert.subject else alert.metric
    where = f"on endpoint {alert.endpoint} (model {alert.model} v{alert.version})"
    value, threshold = _fmt(alert.value), _fmt(alert.threshold)
    if event == "firing":
        side = {">": "above", "<": "below"}.get(op, "beyond")
        severity = alert.severity.capitalize()
        return f"{severity}: {what} {where} is {value}, {side} the threshold {threshold}."
    if note:
        return f"{note} ({what} {where} was {value}; threshold {threshold})."
    return f"Resolved: {what} {where} is {value}, back within the threshold {threshold}."


class AlertService:
    def __init__(self, engine: Engine, channels: ChannelService, *, max_attempts: int = 8) -> None:
        if max_attempts < 1:
            raise ValidationFailed.field("max_attempts", "must be at least 1")
        self.engine = engine
        self.channels = channels
        self.max_attempts = max_attempts

    # --- evaluations in ---------------------------------------------------------------

    def apply(
        self, evaluations: Sequence[Evaluation], now: datetime
    ) -> builtins.list[dict[str, Any]]:
        """Fire, update or resolve alerts; returns one dict per change made."""
        relevant = [e for e in evaluations if e.status in ("breach", "ok")]
        firing = self._firing({e.fingerprint for e in relevant})
        changes: builtins.list[dict[str, Any]] = []
        for ev in relevant:
            # Most evaluations are healthy subjects with nothing firing: skip their write
            # transaction. Whatever needs a change is re-checked under the lock.
            if ev.status == "ok" and ev.fingerprint not in firing:
                continue
            change = self._apply_one(ev, now)
            firing.discard(ev.fingerprint)
            if change is None:
                continue
            changes.append(change)
            if change["action"] != "resolved":
                firing.add(ev.fingerprint)
            if change["action"] == "fired":
                ALERTS_FIRED.labels(endpoint=ev.endpoint, severity=ev.severity).inc()
        return changes

    def _firing(self, fingerprints: set[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(fingerprints)
        with self.engine.connect() as conn:
            for i in range(0, len(ordered), 500):
                query = select(alerts.c.fingerprint).where(
                    alerts.c.state == "firing", alerts.c.fingerprint.in_(ordered[i : i + 500])
                )
                found.update(conn.execute(query).scalars())
        return found

    def _apply_one(self, ev: Evaluation, now: datetime) -> dict[str, Any] | None:
        with transaction(self.engine) as conn:
            return self.raise_in(conn, ev, now)

    def raise_in(self, conn: Connection, ev: Evaluation, now: datetime) -> dict[str, Any] | None:
        """Fire, update or resolve the alert of ``ev`` in ``conn``'s transaction — so a
        decision (a rollout rolled back) and its alert commit together or not at all."""
        value = _finite(ev.value)
        evidence = _plain(ev.to_evidence())
        self._lock(conn, ev.fingerprint)
        row = conn.execute(
            select(alerts)
            .where(alerts.c.fingerprint == ev.fingerprint, alerts.c.state == "firing")
            .limit(1)
        ).first()
        if row is None and ev.status == "ok":
            return None
        if row is None:
            alert = Alert(
                id=new_id(),
                fingerprint=ev.fingerprint,
                **{name: getattr(ev, name) for name in _FROM_EVALUATION.split()},
                state="firing",
                value=value,
                evidence=evidence,
                started_at=now,
                updated_at=now,
                resolved_at=None,
            )
            conn.execute(alerts.insert().values(**_columns(alert)))
            sent_to = self._enqueue(conn, alert, "firing", now)
            return _change("fired", alert, sent_to)
        current = Alert.from_row(row)
        if ev.status == "breach":
            changed = {"value": value, "evidence": evidence, "updated_at": now}
            conn.execute(alerts.update().where(alerts.c.id == row.id).values(**changed))
            return _change("updated", current, [])
        # Recovered: the resolved event reports the value it recovered to.
        changed = {
            "state": "resolved",
            "value": value,
            "evidence": evidence,
            "updated_at": now,
            "resolved_at": now,
        }
        conn.execute(alerts.update().where(alerts.c.id == row.id).values(**changed))
        resolved = Alert(**{**_columns(current), **changed})
        return _change("resolved", resolved, self._enqueue(conn, resolved, "resolved", now))

    def resolve(self, alert_id: str, actor: Actor, reason: str) -> Alert:
        """Resolve a firing alert by hand (audited ``alert.resolve``); channels are told."""
        now = utcnow()
        with transaction(self.engine) as conn:
            fingerprint = conn.execute(
                select(alerts.c.fingerprint).where(alerts.c.id == alert_id)
            ).scalar_one_or_none()
            if fingerprint is None:
                raise NotFound(f"alert {alert_id!r} not found")
            self._lock(conn, fingerprint)
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).one()
            if row.state != "firing":
                raise Conflict(f"alert {alert_id!r} is already resolved")
            before = Alert.from_row(row)
            changed = {"state": "resolved", "updated_at": now, "resolved_at": now}
            conn.execute(alerts.update().where(alerts.c.id == alert_id).values(**changed))
            after = Alert(**{**_columns(before), **changed})
            note = f"Resolved by {actor.name}" + (f": {reason}" if reason else "")
            self._enqueue(conn, after, "resolved", now, note=note)
            append(
                conn,
                actor,
                "alert.resolve",
                target_kind="alert",
                target=alert_id,
                before=_audited(before),
                after=_audited(after),
                reason=reason,
            )
        return after

    def _lock(self, conn: Connection, fingerprint: str) -> None:
        """Serialize changes to one fingerprint across processes, so only one alert per
        fingerprint is ever firing. SQLite's write transaction already holds the lock;
        PostgreSQL takes a transaction-scoped advisory lock on the fingerprint's hash."""
        if backend_name(self.engine) == "postgresql":
            key = int.from_bytes(hashlib.sha256(fingerprint.encode()).digest()[:8], signed=True)
            conn.execute(select(func.pg_advisory_xact_lock(key)))

    def _enqueue(
        self, conn: Connection, alert: Alert, event: str, now: datetime, *, note: str = ""
    ) -> builtins.list[str]:
        """One pending delivery per matching channel, and always one to the log."""
        owner_row = conn.execute(
            select(models.c.owner, models.c.oncall, models.c.runbook_url).where(
                models.c.name == alert.model
            )
        ).first()
        owner = dict(owner_row._asdict()) if owner_row else {}
        payload = alert_payload(alert, event, owner, note=note)
        targets = [LOG_CHANNEL.name]
        targets += [c.name for c in matching_channels(conn, alert.endpoint, alert.severity)]
        conn.execute(
            alert_deliveries.insert(),
            [
                {
                    "id": new_id(),
                    "alert_id": alert.id,
                    "channel": name,
                    "event": event,
                    "payload": payload,
                    "status": "pending",
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for name in targets
            ],
        )
        return targets

    # --- deliveries out ---------------------------------------------------------------

    def deliver_due(self, now: datetime | None = None) -> int:
        """Send pending deliveries that are due, oldest first, at most ``BATCH`` of them;
        returns how many were attempted. Safe to run in several processes at once."""
        attempted = 0
        while attempted < BATCH:
            claimed = self._claim(now or utcnow(), min(CLAIM_CHUNK, BATCH - attempted))
            if not claimed:
                break
            for delivery in claimed:
                self._attempt(delivery, now)
            attempted += len(claimed)
        return attempted

    def _claim(self, at: datetime, limit: int) -> builtins.list[Delivery]:
        """Take due deliveries by pushing their next attempt past a lease, in one short
        transaction (SKIP LOCKED lets PostgreSQL processes take disjoint rows)."""
        with transaction(self.engine) as conn:
            rows = conn.execute(
                select(alert_deliveries)
                .where(alert_deliveries.c.status == "pending")
                .where(alert_deliveries.c.next_attempt_at <= at)
                .order_by(alert_deliveries.c.created_at, alert_deliveries.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if rows:
                conn.execute(
                    alert_deliveries.update()
                    .where(alert_deliveries.c.id.in_([r.id for r in rows]))
                    .values(next_attempt_at=at + CLAIM_LEASE)
                )
        return [Delivery.from_row(r) for r in rows]

    def _attempt(self, delivery: Delivery, now: datetime | None) -> None:
        try:
            config = self.channels.config(delivery.channel)
        except NotFound:
            error = f"channel {delivery.channel!r} was deleted"
            self._record(delivery, "-", SendResult(False, None, error), now, final=True)
            return
        result = send(config, delivery.payload)  # outside any transaction: may take seconds
        self._record(delivery, config.kind, result, now)

    def _record(
        self,
        delivery: Delivery,
        kind: str,
        result: SendResult,
        now: datetime | None,
        *,
        final: bool = False,
    ) -> None:
        at = now or utcnow()
        attempts = delivery.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "response_status": result.status,
            "last_error": result.error[:1000],
        }
        if result.ok:
            outcome = "delivered"
            values.update(status="delivered", delivered_at=at, last_error="")
        elif final or attempts >= self.max_attempts:
            outcome = "failed"
            values.update(status="failed")
        else:
            outcome = "retry"
            values.update(next_attempt_at=at + backoff(attempts))
        with transaction(self.engine) as conn:
            conn.execute(
                alert_deliveries.update()
                .where(alert_deliveries.c.id == delivery.id)
                .where(alert_deliveries.c.status == "pending")
                .values(**values)
            )
        ALERT_DELIVERIES.labels(kind=kind, outcome=outcome).inc()

    # --- reading ------------------------------------------------------------------------

    def get(self, alert_id: str) -> Alert:
        """One alert with its deliveries, oldest first."""
        with self.engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            if row is None:
                raise NotFound(f"alert {alert_id!r} not found")
            deliveries = conn.execute(
                select(alert_deliveries)
                .where(alert_deliveries.c.alert_id == alert_id)
                .order_by(alert_deliveries.c.created_at, alert_deliveries.c.channel)
            )
            return Alert.from_row(row, [Delivery.from_row(d) for d in deliveries])

    def list(
        self, endpoint: str | None = None, state: str | None = None, limit: int = 100
    ) -> builtins.list[Alert]:
        """Alerts, newest first."""
        if state is not None and state not in STATES:
            raise ValidationFailed.field("state", f"must be one of {', '.join(STATES)}")
        if not 1 <= limit <= 1000:
            raise ValidationFailed.field("limit", "must be between 1 and 1000")
        query = select(alerts).order_by(alerts.c.started_at.desc(), alerts.c.id.desc())
        if endpoint is not None:
            query = query.where(alerts.c.endpoint == endpoint)
        if state is not None:
            query = query.where(alerts.c.state == state)
        with self.engine.connect() as conn:
            return [Alert.from_row(r) for r in conn.execute(query.limit(limit))]


def _change(action: str, alert: Alert, sent_to: Iterable[str]) -> dict[str, Any]:
    return {
        "action": action,
        "alert_id": alert.id,
        "fingerprint": alert.fingerprint,
        "endpoint": alert.endpoint,
        "severity": alert.severity,
        "value": alert.value,
        "deliveries": list(sent_to),
    }


def _columns(alert: Alert) -> dict[str, Any]:
    return {f.name: getattr(alert, f.name) for f in fields(alert) if f.name != "deliveries"}


def _audited(alert: Alert) -> dict[str, Any]:
    out = alert.to_dict()
    out.pop("evidence", None)  # the numbers stay on the alert; the log records the change
    return out


def _iso(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, datetimes to ISO, NaN and inf to None
    (PostgreSQL's JSON refuses them)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    return value

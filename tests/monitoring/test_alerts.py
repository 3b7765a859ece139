"""Alerts on SQLite and PostgreSQL: dedup, resolve, channel filters, the outbox delivered
to a real HTTP receiver with retries and backoff (time injected, never slept), and
concurrent apply/deliver from several threads."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select

from slipway.audit import Actor
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.monitoring.alerts import AlertService, backoff
from slipway.monitoring.channels import ChannelService
from slipway.monitoring.evaluation import Evaluation
from slipway.registry.models import ModelService
from slipway.store.tables import alert_deliveries, alerts, audit_events
from tests.monitoring.test_channels import SECRET, Receiver, dead_url, verify_signature

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ADMIN = Actor("admin")


def evaluation(status: str = "breach", value: float | None = 0.31, **kw: Any) -> Evaluation:
    base: dict[str, Any] = {
        "monitor_id": "mon-drift",
        "monitor": "drift",
        "endpoint": "churn",
        "model": "churn-model",
        "version": 3,
        "metric": "psi",
        "subject": "age",
        "severity": "warning",
        "status": status,
        "value": value,
        "op": ">",
        "threshold": 0.2,
        "samples": 500,
        "min_samples": 100,
        "window_start": T0 - timedelta(hours=1),
        "window_end": T0,
        "evidence": {"bins": [np.float64(0.5), float("nan")], "psi": np.float32(0.31)},
    }
    return Evaluation(**{**base, **kw})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def service(engine: Engine) -> AlertService:
    ModelService(engine).create(
        name="churn-model",
        owner="team-a@example.com",
        actor=ADMIN,
        oncall="pager-a",
        runbook_url="https://runbooks.example.com/churn",
    )
    return AlertService(engine, ChannelService(engine), max_attempts=3)


def deliveries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        query = select(alert_deliveries).order_by(alert_deliveries.c.created_at)
        return conn.execute(query).all()


def test_breach_fires_once_and_repeats_only_update(service: AlertService) -> None:
    service.channels.create("ops", "log", actor=ADMIN)
    [change] = service.apply([evaluation()], T0)
    assert change["action"] == "fired" and change["deliveries"] == ["log", "ops"]

    alert = service.get(change["alert_id"])
    assert (alert.state, alert.model, alert.version, alert.value) == (
        "firing",
        "churn-model",
        3,
        0.31,
    )
    assert alert.started_at == T0 and alert.fingerprint == "mon-drift:3:age"
    assert alert.evidence["bins"] == [0.5, None]  # numpy to JSON; NaN to null
    assert alert.deliveries is not None and len(alert.deliveries) == 2
    payload = alert.deliveries[0].payload
    assert {k: payload[k] for k in ("event", "severity", "endpoint", "model", "version")} == {
        "event": "firing",
        "severity": "warning",
        "endpoint": "churn",
        "model": "churn-model",
        "version": 3,
    }
    assert (payload["owner"], payload["oncall"]) == ("team-a@example.com", "pager-a")
    assert payload["runbook_url"] == "https://runbooks.example.com/churn"
    assert (payload["value"], payload["threshold"], payload["op"]) == (0.31, 0.2, ">")
    assert payload["started_at"] == T0.isoformat() and payload["resolved_at"] is None
    assert payload["evidence"]["samples"] == 500
    assert payload["summary"] == (
        "Warning: psi of age on endpoint churn (model churn-model v3) is 0.31, "
        "above the threshold 0.2."
    )

    later = T0 + timedelta(minutes=5)
    [again] = service.apply([evaluation(value=0.4)], later)
    assert (again["action"], again["alert_id"], again["deliveries"]) == ("updated", alert.id, [])
    updated = service.get(alert.id)
    assert updated.value == 0.4 and updated.updated_at == later and updated.started_at == T0
    assert len(updated.deliveries or []) == 2  # no new notification while it keeps firing
    assert [a.id for a in service.list()] == [alert.id]


def test_recovery_resolves_and_notifies(service: AlertService) -> None:
    [fired] = service.apply([evaluation()], T0)
    assert service.apply([evaluation(status="insufficient", value=None)], T0) == []
    [resolved] = service.apply([evaluation(status="ok", value=0.05)], T0 + timedelta(hours=1))
    assert resolved["action"] == "resolved" and resolved["alert_id"] == fired["alert_id"]
    alert = service.get(fired["alert_id"])
    assert alert.state == "resolved" and alert.resolved_at == T0 + timedelta(hours=1)
    events = [(d.channel, d.event) for d in alert.deliveries or []]
    assert events == [("log", "firing"), ("log", "resolved")]
    payload = (alert.deliveries or [])[1].payload
    assert payload["event"] == "resolved" and payload["value"] == 0.05
    assert payload["resolved_at"] == (T0 + timedelta(hours=1)).isoformat()
    assert payload["summary"].startswith("Resolved: psi of age")
    # Healthy again and again: nothing more; a new breach is a new alert.
    assert service.apply([evaluation(status="ok", value=0.01)], T0 + timedelta(hours=2)) == []
    [refired] = service.apply([evaluation()], T0 + timedelta(hours=3))
    assert refired["action"] == "fired" and refired["alert_id"] != fired["alert_id"]


def test_insufficient_and_ok_without_alert_do_nothing(service: AlertService) -> None:
    quiet = [evaluation(status="insufficient", value=None), evaluation(status="ok", value=0.01)]
    assert service.apply(quiet, T0) == []
    assert service.list() == [] and deliveries(service.engine) == []


def test_channels_filter_by_endpoint_and_severity(service: AlertService) -> None:
    create = service.channels.create
    create("all-hook", "webhook", url="https://hooks.example.com/a", actor=ADMIN)
    create("churn-only", "log", endpoints=["churn"], actor=ADMIN)
    create("other-only", "log", endpoints=["fraud"], actor=ADMIN)
    create("critical-only", "log", min_severity="critical", actor=ADMIN)
    create("warning-up", "log", min_severity="warning", actor=ADMIN)
    info = evaluation(monitor_id="m-info", severity="info")
    warning = evaluation(monitor_id="m-warn", severity="warning")
    critical = evaluation(monitor_id="m-crit", severity="critical", endpoint="fraud", model="x")
    got = {c["severity"]: c["deliveries"] for c in service.apply([info, warning, critical], T0)}
    assert got == {
        "info": ["log", "all-hook", "churn-only"],
        "warning": ["log", "all-hook", "churn-only", "warning-up"],
        "critical": ["log", "all-hook", "critical-only", "other-only", "warning-up"],
    }
    # A model missing from the inventory leaves owner fields empty instead of failing.
    [fraud] = service.list(endpoint="fraud")
    assert (service.get(fraud.id).deliveries or [])[0].payload["owner"] == ""


def test_webhook_delivery_is_signed_and_recorded(
    service: AlertService, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    service.channels.create(
        "ops-hook",
        "webhook",
        url=receiver.url + "/alerts",
        secret_ref="env:HOOK_SECRET",
        actor=ADMIN,
    )
    [change] = service.apply([evaluation()], T0)
    assert service.deliver_due(T0) == 2  # the webhook and the log
    assert service.deliver_due(T0) == 0
    [request] = receiver.requests
    verify_signature(request, SECRET)
    alert = service.get(change["alert_id"])
    hook = next(d for d in alert.deliveries or [] if d.channel == "ops-hook")
    assert json.loads(request["body"]) == hook.payload
    assert (hook.status, hook.attempts, hook.response_status) == ("delivered", 1, 200)
    assert hook.delivered_at == T0 and hook.last_error == ""
    assert all(d.status == "delivered" for d in alert.deliveries or [])

    # Nothing about the secret anywhere it could be shown.
    with service.engine.connect() as conn:
        audit = conn.execute(select(audit_events)).all()
    shown = json.dumps(
        [
            alert.to_dict(),
            [a.to_dict() for a in service.list()],
            [c.to_dict() for c in service.channels.list()],
            [e._asdict() for e in audit],
        ],
        default=str,
    )
    assert SECRET not in shown and "HOOK_SECRET" not in shown


def test_failing_receiver_is_retried_with_backoff_until_delivered(
    service: AlertService, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500]
    service.channels.create("ops-hook", "webhook", url=receiver.url, actor=ADMIN)
    service.apply([evaluation()], T0)

    assert service.deliver_due(T0) == 2
    [hook] = [d for d in deliveries(service.engine) if d.channel == "ops-hook"]
    assert (hook.status, hook.attempts, hook.last_error, hook.response_status) == (
        "pending",
        1,
        "HTTP 500",
        500,
    )
    assert T0 + timedelta(seconds=1) <= hook.next_attempt_at <= T0 + timedelta(seconds=1.1)
    assert service.deliver_due(T0 + timedelta(seconds=0.5)) == 0  # not due yet

    t1 = T0 + timedelta(seconds=2)
    assert service.deliver_due(t1) == 1
    [hook] = [d for d in deliveries(service.engine) if d.channel == "ops-hook"]
    assert hook.attempts == 2
    assert t1 + timedelta(seconds=2) <= hook.next_attempt_at <= t1 + timedelta(seconds=2.2)

    assert service.deliver_due(T0 + timedelta(seconds=10)) == 1
    [hook] = [d for d in deliveries(service.engine) if d.channel == "ops-hook"]
    assert (hook.status, hook.attempts, hook.response_status) == ("delivered", 3, 200)
    assert len(receiver.requests) == 3


def test_unreachable_receiver_fails_after_max_attempts(service: AlertService) -> None:
    service.channels.create("ops-hook", "webhook", url=dead_url(), actor=ADMIN)
    service.apply([evaluation()], T0)
    now = T0
    for _ in range(3):
        service.deliver_due(now)
        now += timedelta(minutes=10)
    assert service.deliver_due(now) == 0
    [hook] = [d for d in deliveries(service.engine) if d.channel == "ops-hook"]
    assert (hook.status, hook.attempts, hook.response_status) == ("failed", 3, None)
    assert hook.last_error.startswith("ConnectError")


def test_delivery_to_a_deleted_channel_fails_with_the_reason(service: AlertService) -> None:
    service.channels.create("gone", "log", actor=ADMIN)
    service.apply([evaluation()], T0)
    service.channels.delete("gone", ADMIN)
    service.deliver_due(T0)
    status = {d.channel: (d.status, d.last_error) for d in deliveries(service.engine)}
    assert status == {"log": ("delivered", ""), "gone": ("failed", "channel 'gone' was deleted")}


def test_manual_resolve_is_audited_and_notified(service: AlertService) -> None:
    [fired] = service.apply([evaluation()], T0)
    resolved = service.resolve(fired["alert_id"], Actor("alice"), "false positive: backfill")
    assert resolved.state == "resolved" and resolved.resolved_at is not None
    with pytest.raises(Conflict):
        service.resolve(fired["alert_id"], Actor("alice"), "again")
    with pytest.raises(NotFound):
        service.resolve("no-such-alert", Actor("alice"), "")
    with pytest.raises(NotFound):
        service.get("no-such-alert")
    last = (service.get(fired["alert_id"]).deliveries or [])[-1]
    assert last.event == "resolved"
    assert last.payload["summary"].startswith("Resolved by alice: false positive: backfill (")
    with service.engine.connect() as conn:
        [event] = conn.execute(
            select(audit_events).where(audit_events.c.action == "alert.resolve")
        ).all()
    assert (event.actor, event.target, event.reason) == (
        "alice",
        fired["alert_id"],
        "false positive: backfill",
    )
    assert (event.before["state"], event.after["state"]) == ("firing", "resolved")
    # The monitor is still breaching: the next evaluation opens a new alert.
    assert service.apply([evaluation()], T0 + timedelta(minutes=1))[0]["action"] == "fired"


def test_list_filters(service: AlertService) -> None:
    service.apply([evaluation(subject=f"f{i}", endpoint=f"ep{i % 2}") for i in range(4)], T0)
    service.apply([evaluation(subject="f0", endpoint="ep0", status="ok", value=0.0)], T0)
    assert len(service.list()) == 4
    assert {a.subject for a in service.list(endpoint="ep1")} == {"f1", "f3"}
    assert [a.subject for a in service.list(state="resolved")] == ["f0"]
    assert len(service.list(limit=2)) == 2
    assert "deliveries" not in service.list()[0].to_dict()
    with pytest.raises(ValidationFailed):
        service.list(state="open")


def test_concurrent_apply_keeps_one_firing_alert(service: AlertService) -> None:
    service.channels.create("ops", "log", actor=ADMIN)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            for _ in range(3):
                service.apply([evaluation()], T0)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with service.engine.connect() as conn:
        assert len(conn.execute(select(alerts)).all()) == 1
    assert sorted(d.channel for d in deliveries(service.engine)) == ["log", "ops"]


def test_concurrent_deliver_due_sends_each_delivery_once(
    service: AlertService, receiver: Receiver
) -> None:
    service.channels.create("ops-hook", "webhook", url=receiver.url, actor=ADMIN)
    service.apply([evaluation(subject=f"f{i}") for i in range(15)], T0)
    barrier = threading.Barrier(3)
    counts: list[int] = []

    def run() -> None:
        barrier.wait()
        counts.append(service.deliver_due(T0))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(counts) == 30
    ids = [body["alert_id"] for body in receiver.bodies()]
    assert len(ids) == 15 and len(set(ids)) == 15
    assert {d.status for d in deliveries(service.engine)} == {"delivered"}


def test_backoff_doubles_from_one_second_up_to_five_minutes() -> None:
    for attempts, base in ((1, 1), (2, 2), (3, 4), (8, 128)):
        assert base <= backoff(attempts).total_seconds() <= base * 1.1
    assert backoff(9).total_seconds() >= 256
    assert backoff(50).total_seconds() == pytest.approx(300, rel=0.0, abs=1e-9)

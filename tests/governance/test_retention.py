"""Retention and legal hold on the real store (SQLite and PostgreSQL), with an injected
clock: what a purge deletes, the one audit event it writes, what a hold keeps; then the
settings, and the purge job, CLI and API on a real server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from slipway.audit import Actor
from slipway.audit.verify import verify
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.governance.retention import RetentionService, days_by_tier
from slipway.ids import new_id
from slipway.registry.models import ModelService
from slipway.runtime import Runtime
from slipway.settings import Settings
from slipway.store import open_engine, transaction
from slipway.store.tables import audit_events, feedback, prediction_records, quarantine
from tests.api.conftest import check_error_response
from tests.cli.expect import as_json, assert_clean_failure
from tests.conftest import ServerProcess, make_server

ADMIN = Actor("admin")
LEGAL = Actor("legal-team")
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAYS = {"low": 90, "medium": 183, "high": 365}


def _ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def add_record(
    engine: Engine,
    model: str,
    created_at: datetime,
    *,
    arm: str = "primary",
    labeled: bool = False,
) -> str:
    """A prediction record of one row (class "yes") made at ``created_at``; with
    ``labeled``, its row's feedback too. Returns the record id."""
    record_id = new_id()
    with transaction(engine) as conn:
        conn.execute(
            prediction_records.insert().values(
                id=record_id,
                created_at=created_at,
                endpoint=f"{model}-endpoint",
                model=model,
                version=1,
                version_id="0" * 32,
                caller="test",
                route="plain",
                rows=1,
                inputs=[{"x": 1.0}],
                outputs={"predictions": ["yes"]},
                latency_ms=1.0,
                outcome="ok",
                arm=arm,
            )
        )
        if labeled:
            conn.execute(
                feedback.insert().values(
                    prediction_id=f"{record_id}-0",
                    record_id=record_id,
                    endpoint=f"{model}-endpoint",
                    model=model,
                    version=1,
                    predicted_at=created_at,
                    received_at=created_at + timedelta(days=1),
                    label="no",
                    prediction="yes",
                    source="feedback",
                    created_by="test",
                )
            )
    return record_id


def add_quarantined(engine: Engine, model: str, created_at: datetime) -> str:
    row_id = new_id()
    with transaction(engine) as conn:
        conn.execute(
            quarantine.insert().values(
                id=row_id,
                created_at=created_at,
                request_id="req",
                row_index=0,
                endpoint=f"{model}-endpoint",
                model=model,
                version=1,
                version_id="0" * 32,
                caller="test",
                route="plain",
                row={"x": "bad"},
                sealed="sealed",
                reasons=[{"field": "x", "reason": "not a number"}],
                status="open",
                attempts=0,
            )
        )
    return row_id


def ids_of(engine: Engine, model: str) -> dict[str, set[str]]:
    with engine.connect() as conn:
        return {
            "prediction_records": set(
                conn.execute(
                    select(prediction_records.c.id).where(prediction_records.c.model == model)
                ).scalars()
            ),
            "feedback": set(
                conn.execute(
                    select(feedback.c.record_id).where(feedback.c.model == model)
                ).scalars()
            ),
            "quarantine": set(
                conn.execute(select(quarantine.c.id).where(quarantine.c.model == model)).scalars()
            ),
        }


def events(engine: Engine, action: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(audit_events)
                .where(audit_events.c.action == action)
                .order_by(audit_events.c.seq)
            )
        )


@pytest.fixture
def seeded(engine: Engine) -> Iterator[dict[str, Any]]:
    """Three models with rows on both sides of their cutoffs (NOW - days of the tier):

    low (90 days)   expired: a labeled record, a shadow copy, a quarantined row
                    kept:    a labeled record of 80 days, a quarantined row of 10
    high (365 days) kept:    a labeled record and a quarantined row of 300 days
    held (low tier, under legal hold): a labeled record and a quarantined row of 200 days
    """
    registry = ModelService(engine)
    for name, tier in (("low", "low"), ("high", "high"), ("held", "low")):
        registry.create(name=name, owner="ml", risk_tier=tier, actor=ADMIN)
    expired = {
        "records": {
            add_record(engine, "low", _ago(100), labeled=True),
            add_record(engine, "low", _ago(91), arm="shadow"),
        },
        "quarantine": {add_quarantined(engine, "low", _ago(95))},
    }
    kept_low = {
        "records": {add_record(engine, "low", _ago(80), labeled=True)},
        "quarantine": {add_quarantined(engine, "low", _ago(10))},
    }
    add_record(engine, "high", _ago(300), labeled=True)
    add_quarantined(engine, "high", _ago(300))
    add_record(engine, "held", _ago(200), labeled=True)
    add_quarantined(engine, "held", _ago(200))
    service = RetentionService(engine, DAYS)
    service.hold("held", "litigation 2025-17", actor=LEGAL)
    yield {"service": service, "expired": expired, "kept_low": kept_low}


def test_purge_removes_only_expired_rows_with_one_audit_event(
    engine: Engine, seeded: dict[str, Any], tmp_path: Path
) -> None:
    service: RetentionService = seeded["service"]
    high_before, held_before = ids_of(engine, "high"), ids_of(engine, "held")

    plan = service.plan(NOW)
    summary = service.purge(NOW, actor=ADMIN)

    # Only the low model's rows older than 90 days went: records (the shadow copy
    # included), the feedback of the labeled one, the quarantined row.
    low = ids_of(engine, "low")
    assert low["prediction_records"] == seeded["kept_low"]["records"]
    assert low["feedback"] == seeded["kept_low"]["records"]
    assert low["quarantine"] == seeded["kept_low"]["quarantine"]
    assert ids_of(engine, "high") == high_before  # 300 days < 365
    assert ids_of(engine, "held") == held_before  # 200 days > 90, but held

    counts = {"prediction_records": 2, "feedback": 1, "quarantine": 1}
    [entry] = summary["models"]
    assert entry == {
        "model": "low",
        "risk_tier": "low",
        "days": 90,
        "cutoff": _ago(90).isoformat(),
        **counts,
    }
    assert summary["totals"] == counts and summary["dry_run"] is False
    [held] = summary["held"]
    assert held["model"] == "held" and held["reason"] == "litigation 2025-17"
    assert held["held_by"] == "legal-team" and held["kept"] == {
        "prediction_records": 1,
        "feedback": 1,
        "quarantine": 1,
    }
    # The dry run before it predicted exactly this.
    assert plan["models"] == summary["models"] and plan["totals"] == summary["totals"]
    assert plan["dry_run"] is True

    [event] = events(engine, "retention.purge")
    assert summary["audit_event"] == {"seq": event.seq, "id": event.id}
    assert (event.actor, event.target_kind, event.target) == ("admin", "store", "retention")
    assert event.after["models"] == summary["models"]
    assert event.after["held"] == summary["held"]
    assert event.after["totals"] == counts and event.after["days"] == DAYS

    # Nothing left to delete: no second event.
    again = service.purge(NOW + timedelta(hours=1))
    assert again["totals"] == dict.fromkeys(counts, 0) and again["audit_event"] is None
    assert len(events(engine, "retention.purge")) == 1

    # Released, the held model's expired rows go with the next purge.
    service.release("held", "case closed", actor=LEGAL)
    after_release = service.purge(NOW)
    assert after_release["held"] == []
    assert ids_of(engine, "held") == {
        "prediction_records": set(),
        "feedback": set(),
        "quarantine": set(),
    }
    assert after_release["totals"] == {"prediction_records": 1, "feedback": 1, "quarantine": 1}
    assert [e.actor for e in events(engine, "retention.purge")] == ["admin", "system"]

    report = verify(engine, tmp_path / "audit")
    assert report.ok, report
    assert report.events > 0


def test_a_later_clock_purges_more(engine: Engine, seeded: dict[str, Any]) -> None:
    """A year on, the high model's 300-day-old rows are past 365 days too."""
    service: RetentionService = seeded["service"]
    summary = service.purge(NOW + timedelta(days=70))
    by_model = {e["model"]: e for e in summary["models"]}
    assert set(by_model) == {"low", "high"}
    assert by_model["high"]["prediction_records"] == 1
    assert by_model["low"]["prediction_records"] == 3  # the 80-day one is past 90 now
    assert ids_of(engine, "high")["prediction_records"] == set()


def test_concurrent_purges_write_one_event(engine: Engine, seeded: dict[str, Any]) -> None:
    """Every worker runs the purge job: two at once delete once and audit once."""
    service: RetentionService = seeded["service"]
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(service.purge(NOW))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 2
    assert sorted(r["totals"]["prediction_records"] for r in results) == [0, 2]
    assert len(events(engine, "retention.purge")) == 1


def test_hold_and_release_are_audited_and_checked(engine: Engine) -> None:
    ModelService(engine).create(name="m", owner="ml", actor=ADMIN)
    service = RetentionService(engine, DAYS)

    held = service.hold("m", "  regulator inquiry  ", actor=LEGAL)
    assert held.legal_hold_reason == "regulator inquiry" and held.legal_hold_by == "legal-team"
    assert held.legal_hold_at is not None
    with pytest.raises(Conflict, match="already under legal hold"):
        service.hold("m", "again", actor=LEGAL)
    released = service.release("m", "inquiry closed", actor=LEGAL)
    assert released.legal_hold_at is None and released.legal_hold_reason is None
    with pytest.raises(Conflict, match="not under legal hold"):
        service.release("m", "again", actor=LEGAL)

    [hold_event] = events(engine, "model.hold")
    assert hold_event.target == "m" and hold_event.reason == "regulator inquiry"
    assert hold_event.before == {
        "legal_hold_at": None,
        "legal_hold_by": None,
        "legal_hold_reason": None,
    }
    assert hold_event.after["legal_hold_reason"] == "regulator inquiry"
    [release_event] = events(engine, "model.release")
    assert release_event.before == hold_event.after
    assert release_event.after["legal_hold_at"] is None
    assert release_event.reason == "inquiry closed"

    for blank in ("", "   ", None):
        with pytest.raises(ValidationFailed) as caught:
            service.hold("m", blank, actor=LEGAL)  # type: ignore[arg-type]
        assert caught.value.details[0]["field"] == "reason"
    with pytest.raises(NotFound, match="'nope'"):
        service.hold("nope", "why", actor=LEGAL)


# -- settings ---------------------------------------------------------------------------


def test_default_retention_keeps_high_risk_records_at_least_six_months(
    tmp_path: Path,
) -> None:
    days = days_by_tier(Settings({"home": str(tmp_path)}, environ={}))
    assert days == {"low": 90, "medium": 183, "high": 365}
    assert days["high"] >= 183
    env = {"SLIPWAY_RETENTION_DAYS_HIGH": "400", "SLIPWAY_RETENTION_INTERVAL_S": "0"}
    settings = Settings({"home": str(tmp_path)}, environ=env)
    assert days_by_tier(settings)["high"] == 400 and settings.retention_interval_s == 0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("0", "from 1 to 36,500 days, got 0"), ("-5", "got -5"), ("40000", "got 40000")],
)
def test_retention_days_out_of_range_are_refused_naming_the_setting(
    tmp_path: Path, raw: str, reason: str
) -> None:
    settings = Settings({"home": str(tmp_path)}, environ={"SLIPWAY_RETENTION_DAYS_LOW": raw})
    with pytest.raises(ValidationFailed) as caught:
        Runtime.from_settings(settings)
    assert caught.value.details[0]["field"] == "SLIPWAY_RETENTION_DAYS_LOW"
    assert reason in caught.value.details[0]["reason"]


def test_days_not_a_number_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="SLIPWAY_RETENTION_DAYS_MEDIUM"):
        Settings({"home": str(tmp_path)}, environ={"SLIPWAY_RETENTION_DAYS_MEDIUM": "6 months"})
    with pytest.raises(ValidationFailed, match="high: must be a whole number"):
        days_by_tier({"low": 1, "medium": 2, "high": 2.5})
    with pytest.raises(ValidationFailed, match="not a risk tier"):
        days_by_tier({**DAYS, "critical": 30})


# -- on a real server: the purge job, the API and the CLI ---------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose purge job runs every half second."""
    server = make_server(
        tmp_path_factory.mktemp("retention") / "home", SLIPWAY_RETENTION_INTERVAL_S="0.5"
    )
    server.init()
    server.start()
    yield server
    server.stop()


def _wait_for(check: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.e2e
def test_the_purge_job_cli_and_api_on_a_server(live: ServerProcess) -> None:
    engine = open_engine(f"sqlite:///{live.home / 'slipway.db'}")
    try:
        with live.client() as c:
            c.create_model("kept", owner="ml", risk_tier="low")
            c.create_model("gone", owner="ml", risk_tier="low")
        held = as_json(live.cli("model", "hold", "kept", "--reason", "case 17", "--json"))
        assert held["legal_hold_reason"] == "case 17" and held["legal_hold_by"] == "admin"

        old = datetime.now(UTC) - timedelta(days=120)
        kept_id = add_record(engine, "kept", old, labeled=True)
        add_record(engine, "gone", old, labeled=True)
        add_quarantined(engine, "gone", old)

        # The job purges the model that is not held, by itself, as "system".
        _wait_for(lambda: not ids_of(engine, "gone")["prediction_records"], "the purge job")
        [event] = events(engine, "retention.purge")
        assert event.actor == "system"
        assert event.after["totals"] == {"prediction_records": 1, "feedback": 1, "quarantine": 1}
        assert ids_of(engine, "kept")["prediction_records"] == {kept_id}

        status = as_json(live.cli("retention", "status", "--json"))
        assert status["days"] == DAYS and status["interval_s"] == 0.5
        assert [h["model"] for h in status["held"]] == ["kept"]
        assert status["held"][0]["kept"]["prediction_records"] == 1
        text = live.cli("retention", "status").stdout
        assert "every 0.5 s" in text and "under legal hold" in text and "case 17" in text
        dry = as_json(live.cli("retention", "purge", "--dry-run", "--json"))
        assert dry["dry_run"] is True and dry["totals"]["prediction_records"] == 0
        assert "would be purged" in live.cli("retention", "purge", "--dry-run").stdout

        again = live.cli("model", "hold", "kept", "--reason", "twice", check=False)
        assert "already under legal hold" in assert_clean_failure(again, "conflict")
        blank = live.cli("model", "release", "kept", "--reason", " ", check=False)
        assert "reason" in assert_clean_failure(blank, "invalid_field")

        released = as_json(live.cli("model", "release", "kept", "--reason", "closed", "--json"))
        assert released["legal_hold_at"] is None
        _wait_for(lambda: not ids_of(engine, "kept")["prediction_records"], "the purge job")

        with live.client() as c:
            assert c.purge_retention()["audit_event"] is None  # nothing left
            assert c.audit_verify()["ok"] is True
        with engine.connect() as conn:
            actions = conn.execute(
                select(audit_events.c.action, func.count()).group_by(audit_events.c.action)
            ).all()
        assert dict(actions)["retention.purge"] == 2
        assert dict(actions)["model.hold"] == 1 and dict(actions)["model.release"] == 1
    finally:
        engine.dispose()


@pytest.mark.e2e
def test_retention_routes_need_their_permissions(live: ServerProcess) -> None:
    import httpx

    with live.client() as c:
        c.create_principal("olga")
        c.create_grant("olga", "operator")
        token = c.create_token("olga")["token"]
        c.create_model("guarded", owner="ml")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as http:
        _wait_for(lambda: http.get("/api/v1/models").status_code == 200, "the new token")
        for method, path, body in (
            ("GET", "/api/v1/retention", None),
            ("POST", "/api/v1/retention/purge", {}),
            ("POST", "/api/v1/models/guarded/hold", {"reason": "mine"}),
        ):
            check_error_response(http.request(method, path, json=body), 403, "forbidden")
    with httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {live.token}"}, timeout=30
    ) as http:
        missing = http.post("/api/v1/models/guarded/hold", json={})
        body = check_error_response(missing, 422, "invalid_field")
        assert body["error"]["details"][0]["field"] == "reason"
        unknown = http.post("/api/v1/models/no-such-model/release", json={"reason": "x"})
        assert (
            "no-such-model" in check_error_response(unknown, 404, "not_found")["error"]["message"]
        )

"""The inventory and periodic reviews on the real store (SQLite and PostgreSQL): review
due dates by risk tier, overdue with an injected clock, reviews and approvals resetting
them, and the CSV/JSON exports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.governance.inventory import COLUMNS, REVIEW_INTERVAL_DAYS, next_review, to_csv
from slipway.ids import utcnow
from slipway.runtime import Runtime
from slipway.store.tables import audit_events, models
from tests.governance.test_testscore import (
    ADMIN,
    APPROVER,
    ARTIFACTS,
    DEV,
    EVIDENCE,
    approve,
    make_runtime,
    register,
)

AGE = timedelta(days=100)


def _created_long_ago(rt: Runtime, name: str) -> datetime:
    """Make ``name`` a model created 100 days ago (when it was last touched)."""
    when = utcnow().replace(microsecond=0) - AGE
    with rt.engine.begin() as conn:
        conn.execute(update(models).where(models.c.name == name).values(created_at=when))
    return when


@pytest.fixture
def runtime(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """``m`` (medium risk) plus ``hi`` (high) and ``lo`` (low), all created 100 days ago;
    ``m`` serves on ``e`` with a canary."""
    monkeypatch.syspath_prepend(str(ARTIFACTS))
    rt = make_runtime(tmp_path / "home", store_url, tags=["churn"])
    rt.models.create(name="hi", owner="risk-team", risk_tier="high", actor=DEV)
    rt.models.create(name="lo", owner="risk-team", risk_tier="low", actor=DEV)
    for name in ("m", "hi", "lo"):
        _created_long_ago(rt, name)
    register(rt)
    register(rt, threshold=4.0)
    rt.endpoints.deploy("e", model="m", version=1, actor=ADMIN)
    rt.plans.set_traffic("e", canary=2, weight=20, routing="random", shadows=[], actor=ADMIN)
    yield rt
    rt.close()


def _rows(rt: Runtime, **kwargs: Any) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rt.inventory.inventory(**kwargs)}


def test_next_review_follows_the_risk_tier_and_overdue_the_clock(runtime: Runtime) -> None:
    rows = _rows(runtime)
    assert list(rows) == ["hi", "lo", "m"]
    created = {n: runtime.models.get(n).created_at for n in rows}
    for name, tier in (("hi", "high"), ("m", "medium"), ("lo", "low")):
        assert rows[name]["risk_tier"] == tier
        assert rows[name]["last_review"] is None
        due = created[name] + timedelta(days=REVIEW_INTERVAL_DAYS[tier])
        assert rows[name]["next_review"] == due.isoformat()
    # Created 100 days ago: only the high-risk model (every 90 days) is overdue now.
    assert {n: r["overdue"] for n, r in rows.items()} == {"hi": True, "m": False, "lo": False}
    # A year on, everything is.
    later = _rows(runtime, now=utcnow() + timedelta(days=300))
    assert all(r["overdue"] for r in later.values())
    assert next_review("high", None, created["hi"]) < next_review("low", None, created["hi"])


def test_a_review_resets_the_clock_and_is_audited(runtime: Runtime) -> None:
    assert _rows(runtime)["hi"]["overdue"] is True
    review = runtime.inventory.review("hi", notes="  Still fit for purpose.  ", actor=APPROVER)
    assert (review.reviewer, review.notes) == ("avery", "Still fit for purpose.")
    row = _rows(runtime)["hi"]
    assert row["last_review"] == review.created_at.isoformat()
    assert row["last_review_by"] == "avery"
    assert row["next_review"] == (review.created_at + timedelta(days=90)).isoformat()
    assert row["overdue"] is False
    assert _rows(runtime, now=review.created_at + timedelta(days=91))["hi"]["overdue"] is True

    second = runtime.inventory.review("hi", notes="Looked again.", actor=DEV)
    assert [r.id for r in runtime.inventory.reviews("hi")] == [second.id, review.id]
    with runtime.engine.connect() as conn:
        events = conn.execute(
            select(audit_events).where(audit_events.c.action == "model.review")
        ).all()
    assert [(e.target, e.actor, e.reason) for e in events] == [
        ("hi", "avery", "Still fit for purpose."),
        ("hi", "dana", "Looked again."),
    ]


def test_an_approval_counts_as_a_review(runtime: Runtime) -> None:
    approve(runtime, 1)
    row = _rows(runtime)["m"]
    assert row["last_review_by"] == "avery (approval)"
    [decided] = runtime.approvals.list(model="m", state="approved")
    assert decided.decided_at is not None
    assert row["last_review"] == decided.decided_at.isoformat()


def test_review_input_is_checked(runtime: Runtime) -> None:
    for notes in ("", "   "):
        with pytest.raises(ValidationFailed) as bad:
            runtime.inventory.review("m", notes=notes, actor=APPROVER)
        assert bad.value.details[0]["field"] == "notes"
    with pytest.raises(ValidationFailed):
        runtime.inventory.review("m", notes="x" * 4001, actor=APPROVER)
    with pytest.raises(NotFound):
        runtime.inventory.review("nope", notes="fine", actor=APPROVER)
    with pytest.raises(NotFound):
        runtime.inventory.reviews("nope")
    runtime.models.retire("lo", actor=DEV)
    with pytest.raises(Conflict):
        runtime.inventory.review("lo", notes="fine", actor=APPROVER)


def test_rows_show_deployments_score_hold_and_filters(runtime: Runtime) -> None:
    runtime.test_scores.attest("hi", "data-2", evidence_url=EVIDENCE, note="x", actor=DEV)
    runtime.retention.hold("lo", "litigation 2024-17", actor=ADMIN)
    rows = _rows(runtime)
    m = rows["m"]
    assert m["deployed"] == ["e (v1, primary)", "e (v2, canary)"]
    assert (m["latest_version"], m["owner"], m["tags"]) == (2, "ml-team", ["churn"])
    score = runtime.test_scores.score("m")
    assert (m["test_score"], m["band"]) == (score["final"], score["band"])
    assert rows["hi"]["deployed"] == [] and rows["hi"]["latest_version"] is None
    assert (rows["lo"]["legal_hold"], rows["m"]["legal_hold"]) == (True, False)
    assert set(m) == set(COLUMNS)

    assert list(_rows(runtime, owner="risk-team")) == ["hi", "lo"]
    assert list(_rows(runtime, tag="churn")) == ["m"]
    assert list(_rows(runtime, name="h")) == ["hi"]
    assert list(_rows(runtime, visible=lambda name: name != "hi")) == ["lo", "m"]
    runtime.models.retire("lo", actor=DEV)
    assert list(_rows(runtime, status="retired")) == ["lo"]


def test_csv_and_json_exports_read_back(runtime: Runtime) -> None:
    rows = runtime.inventory.inventory()
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [r["name"] for r in parsed] == ["hi", "lo", "m"]
    assert tuple(parsed[0]) == COLUMNS
    m = parsed[2]
    assert m["deployed"] == "e (v1, primary); e (v2, canary)"
    assert (m["overdue"], m["legal_hold"], m["last_review"]) == ("false", "false", "")
    assert float(m["test_score"]) == rows[2]["test_score"]
    assert parsed[0]["overdue"] == "true"
    assert json.loads(json.dumps(rows)) == rows
    assert to_csv([]) == ",".join(COLUMNS) + "\n"


def test_csv_cells_never_start_a_spreadsheet_formula() -> None:
    rows = [{"name": "m", "owner": '=HYPERLINK("http://x")', "tags": ["@cmd", "ok"]}]
    [parsed] = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert parsed["owner"] == '\'=HYPERLINK("http://x")'
    assert parsed["tags"] == "'@cmd; ok"
    assert parsed["name"] == "m"

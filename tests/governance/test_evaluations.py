"""Evaluation records on the real store (SQLite and PostgreSQL): append-only, the newest
is the evidence, a version registered with ``lineage.metrics`` has that as evidence
until one is recorded, and the digest approvals bind to follows the content."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from slipway.audit import Actor
from slipway.errors import Conflict, ValidationFailed
from slipway.governance.evaluations import digest_of
from slipway.registry.versions import Version
from slipway.runtime import Runtime
from slipway.store.tables import audit_events
from tests.conftest import pyfunc_runtime, ready_pyfunc_version

DEV = Actor("dana")
SIGNATURE = {"inputs": [{"name": "x", "type": "float"}], "classes": [0, 1]}
FINGERPRINT = {"sha256": "a" * 64, "rows": 500, "columns": ["x", "__label__"]}
WHEN = "2024-06-01T12:00:00+00:00"


def make_runtime(home: Path, database_url: str = "") -> Runtime:
    runtime: Runtime = pyfunc_runtime(home, database_url)
    runtime.models.create(name="m", owner="ml-team", actor=DEV)
    return runtime


def ready_version(
    runtime: Runtime, *, actor: Actor = DEV, lineage: dict[str, Any] | None = None
) -> Version:
    """A ready version of ``m`` registered by ``actor`` (no smoke test: nothing loads it)."""
    version: Version = ready_pyfunc_version(
        runtime,
        "m",
        "ThresholdModel",
        actor=actor,
        signature=SIGNATURE,
        example_rows=[{"x": 1.0}],
        lineage=lineage,
    )
    return version


@pytest.fixture
def runtime(store_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """Once on SQLite, once on PostgreSQL."""
    rt = make_runtime(tmp_path / "home", store_url)
    yield rt
    rt.close()


@pytest.fixture
def sqlite_runtime(tmp_path: Path) -> Iterator[Runtime]:
    """For checks that do not reach the store (input validation)."""
    rt = make_runtime(tmp_path / "home")
    yield rt
    rt.close()


def test_the_newest_record_is_the_evidence_and_history_is_newest_first(
    runtime: Runtime,
) -> None:
    version = ready_version(runtime)
    assert runtime.evaluations.current(version) is None
    first = runtime.evaluations.record(
        "m", 1, actor=DEV, metrics={"auc": 0.81}, dataset=FINGERPRINT, evaluated_at=WHEN
    )
    second = runtime.evaluations.record(
        "m",
        1,
        actor=DEV,
        metrics={"auc": 0.84, "accuracy": 0.9},
        slices={"eu": {"auc": 0.8}, "us": {"auc": 0.88}},
        baseline={"auc": 0.5},
    )
    third = runtime.evaluations.record("m", 1, actor=DEV, metrics={"auc": 0.86})

    current = runtime.evaluations.current(version)
    assert current == third and not current.derived
    assert [r.id for r in runtime.evaluations.history("m", 1)] == [third.id, second.id, first.id]
    # What is read back is what was recorded, field for field.
    stored = runtime.evaluations.history("m", 1)[1]
    assert stored == second
    assert stored.slices == {"eu": {"auc": 0.8}, "us": {"auc": 0.88}}
    assert stored.baseline == {"auc": 0.5} and stored.created_by == "dana"
    assert runtime.evaluations.history("m", 1)[2].dataset == FINGERPRINT
    assert first.evaluated_at == datetime(2024, 6, 1, 12, tzinfo=UTC)
    # Without evaluated_at, the record says now (to the second).
    assert second.evaluated_at is not None
    assert abs((datetime.now(UTC) - second.evaluated_at).total_seconds()) < 60


def test_a_version_registered_with_metrics_has_them_as_derived_evidence(
    runtime: Runtime,
) -> None:
    lineage = {"metrics": {"auc": 0.8, "accuracy": 0.75}, "evaluation_data": FINGERPRINT}
    version = ready_version(runtime, lineage=lineage)
    derived = runtime.evaluations.current(version)
    assert derived is not None and derived.derived and derived.id is None
    assert derived.metrics == {"auc": 0.8, "accuracy": 0.75}
    assert derived.dataset == FINGERPRINT and derived.created_by == "dana"
    assert derived.to_dict()["derived"] is True
    assert runtime.evaluations.history("m", 1) == []  # derived, not stored
    # Derived twice, the same digest: an approval bound to it stays bound.
    again = runtime.evaluations.current(runtime.versions.get("m", 1))
    assert again is not None and again.digest == derived.digest

    recorded = runtime.evaluations.record("m", 1, actor=DEV, metrics={"auc": 0.83})
    assert runtime.evaluations.current(version) == recorded


def test_the_digest_follows_the_content(runtime: Runtime) -> None:
    ready_version(runtime)
    record = runtime.evaluations.record
    body: dict[str, Any] = {
        "metrics": {"auc": 0.8, "accuracy": 0.7},
        "slices": {"eu": {"auc": 0.79}},
        "baseline": {"auc": 0.5},
        "dataset": FINGERPRINT,
        "evaluated_at": WHEN,
    }
    a = record("m", 1, actor=DEV, **body)
    # Same content, keys in another order, by someone else: the same evidence.
    reordered = {**body, "metrics": {"accuracy": 0.7, "auc": 0.8}}
    b = record("m", 1, actor=Actor("someone-else"), **reordered)
    assert a.id != b.id and a.digest == b.digest
    # The same instant in another zone is the same evidence too.
    c = record("m", 1, actor=DEV, **{**body, "evaluated_at": "2024-06-01T14:00:00+02:00"})
    assert c.digest == a.digest and c.evaluated_at == a.evaluated_at
    changes: list[dict[str, Any]] = [
        {"metrics": {"auc": 0.81, "accuracy": 0.7}},
        {"slices": {"eu": {"auc": 0.78}}},
        {"baseline": {"auc": 0.55}},
        {"dataset": {**FINGERPRINT, "rows": 501}},
        {"evaluated_at": "2024-06-02T12:00:00+00:00"},
    ]
    digests = {record("m", 1, actor=DEV, **{**body, **change}).digest for change in changes}
    assert len(digests) == len(changes) and a.digest not in digests
    assert a.digest == digest_of(
        a.metrics, a.slices, a.baseline, a.dataset, datetime(2024, 6, 1, 12, tzinfo=UTC)
    )


FUTURE = (datetime.now(UTC) + timedelta(days=1)).isoformat()
INVALID: list[tuple[dict[str, Any], str]] = [
    ({"metrics": {}}, "metrics"),
    ({"metrics": None}, "metrics"),
    ({"metrics": [0.8]}, "metrics"),
    ({"metrics": {"auc": math.nan}}, "metrics.auc"),
    ({"metrics": {"auc": math.inf}}, "metrics.auc"),
    ({"metrics": {"auc": "high"}}, "metrics.auc"),
    ({"metrics": {"auc": True}}, "metrics.auc"),
    ({"metrics": {"": 1.0}}, "metrics"),
    ({"metrics": {f"m{i}": 1.0 for i in range(101)}}, "metrics"),
    ({"slices": "eu"}, "slices"),
    ({"slices": {"eu": {}}}, "slices.eu"),
    ({"slices": {"eu": 0.8}}, "slices.eu"),
    ({"slices": {"eu": {"auc": -math.inf}}}, "slices.eu.auc"),
    ({"baseline": {"auc": None}}, "baseline.auc"),
    ({"evaluated_at": FUTURE}, "evaluated_at"),
    ({"evaluated_at": "2024-06-01T12:00:00"}, "evaluated_at"),  # no zone
    ({"evaluated_at": "last tuesday"}, "evaluated_at"),
    ({"evaluated_at": 1717243200}, "evaluated_at"),
    ({"dataset": "eval.csv"}, "dataset"),
    ({"dataset": {**FINGERPRINT, "sha256": "abc"}}, "dataset.sha256"),
    ({"dataset": {**FINGERPRINT, "rows": -1}}, "dataset.rows"),
    ({"dataset": {**FINGERPRINT, "columns": "x"}}, "dataset.columns"),
]


@pytest.mark.parametrize(("change", "field"), INVALID, ids=[f for _, f in INVALID])
def test_every_validation_error_names_its_field(
    sqlite_runtime: Runtime, change: dict[str, Any], field: str
) -> None:
    ready_version(sqlite_runtime)
    body = {"metrics": {"auc": 0.8}, **change}
    with pytest.raises(ValidationFailed) as caught:
        sqlite_runtime.evaluations.record("m", 1, actor=DEV, **body)
    assert caught.value.details[0]["field"] == field, caught.value.details
    assert caught.value.message.startswith(f"{field}: ")
    assert sqlite_runtime.evaluations.history("m", 1) == []


def test_a_retired_version_takes_no_evaluation(runtime: Runtime) -> None:
    ready_version(runtime)
    runtime.versions.retire("m", 1, actor=DEV)
    with pytest.raises(Conflict, match="retired"):
        runtime.evaluations.record("m", 1, actor=DEV, metrics={"auc": 0.8})
    assert runtime.evaluations.history("m", 1) == []


def test_recording_is_audited_with_the_record(runtime: Runtime) -> None:
    ready_version(runtime)
    record = runtime.evaluations.record(
        "m", 1, actor=Actor("dana", "tok-1", "req-1"), metrics={"auc": 0.8}
    )
    with runtime.engine.connect() as conn:
        events = conn.execute(
            select(audit_events).where(audit_events.c.action == "evaluation.record")
        ).all()
    assert len(events) == 1
    event = events[0]._asdict()
    assert (event["actor"], event["target_kind"], event["target"]) == ("dana", "version", "m/1")
    after = event["after"]
    assert event["token_id"] == "tok-1" and event["request_id"] == "req-1"
    assert after["digest"] == record.digest and after["metrics"] == {"auc": 0.8}

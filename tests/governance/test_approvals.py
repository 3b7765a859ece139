"""Approvals on the real store (SQLite and PostgreSQL): request, one decision with a
rationale, separation of duties, and the binding to the evidence that a new evaluation
record breaks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from slipway.audit import Actor
from slipway.errors import Conflict, Forbidden, NotFound, ValidationFailed
from slipway.governance.approvals import Approval
from slipway.runtime import Runtime
from slipway.store.tables import audit_events
from tests.governance.test_evaluations import DEV, make_runtime, ready_version

APPROVER = Actor("avery")
OTHER_APPROVER = Actor("olive")


@pytest.fixture
def runtime(store_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """Once on SQLite, once on PostgreSQL, with version 1 of ``m`` ready (registered by
    dana, with metrics in its lineage) and an approval requested by dana."""
    rt = make_runtime(tmp_path / "home", store_url)
    ready_version(rt, lineage={"metrics": {"auc": 0.8}})
    yield rt
    rt.close()


def _request(rt: Runtime, number: int = 1, note: str = "for pricing") -> Approval:
    return rt.approvals.request("m", number, actor=DEV, note=note)


def _decide(rt: Runtime, approval: Approval, *, approve: bool = True, **kw: Any) -> Approval:
    options: dict[str, Any] = {
        "rationale": "AUC holds on every slice",
        "actor": APPROVER,
        "roles": ["approver"],
    }
    options.update(kw)
    return rt.approvals.decide(approval.id, approve=approve, **options)


def _audit(rt: Runtime, action: str) -> list[dict[str, Any]]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events).where(audit_events.c.action == action).order_by(audit_events.c.seq)
        ).all()
    return [r._asdict() for r in rows]


def test_a_request_is_pending_and_bound_to_the_evidence(runtime: Runtime) -> None:
    version = runtime.versions.get("m", 1)
    approval = _request(runtime)
    assert (approval.state, approval.requested_by, approval.request_note) == (
        "pending",
        "dana",
        "for pricing",
    )
    assert approval.binding == runtime.approvals.binding_of(version)
    assert approval.artifact_sha256 == version.artifact_sha256
    evidence = runtime.evaluations.current(version)
    assert evidence is not None and approval.evaluation_digest == evidence.digest
    assert runtime.approvals.get(approval.id) == approval
    assert runtime.approvals.list(state="pending") == [approval]
    assert runtime.approvals.of_version(version) == [approval]
    # Pending is not approved: nothing counts yet.
    assert runtime.approvals.valid(version) == []
    shown = approval.to_dict(runtime.approvals.binding_of(version))
    assert shown["valid"] is False and shown["stale_because"] == []


def test_one_pending_request_per_version_and_only_for_ready_versions(runtime: Runtime) -> None:
    first = _request(runtime)
    with pytest.raises(Conflict, match=first.id):
        _request(runtime)
    registered = runtime.versions.register(
        "m",
        artifact_sha256=runtime.versions.get("m", 1).artifact_sha256,
        flavor="pyfunc",
        signature={"inputs": [{"name": "x", "type": "float"}], "classes": [0, 1]},
        example_rows=[{"x": 1.0}],
        actor=DEV,
    )
    with pytest.raises(Conflict, match="registered, not ready"):
        _request(runtime, registered.number)
    runtime.versions.retire("m", 1, actor=DEV)
    _decide(runtime, first, approve=False)
    with pytest.raises(Conflict, match="retired, not ready"):
        _request(runtime)
    with pytest.raises(NotFound):
        _request(runtime, 99)
    with pytest.raises(ValidationFailed) as caught:
        runtime.approvals.request("m", 1, actor=DEV, note=5)  # type: ignore[arg-type]
    assert caught.value.details[0]["field"] == "note"


@pytest.mark.parametrize("rationale", ["", "   ", None])
def test_a_decision_needs_a_rationale(runtime: Runtime, rationale: Any) -> None:
    approval = _request(runtime)
    for approve in (True, False):
        with pytest.raises(ValidationFailed) as caught:
            _decide(runtime, approval, approve=approve, rationale=rationale)
        assert caught.value.details == [{"field": "rationale", "reason": "is required: say why"}]
    assert runtime.approvals.get(approval.id).state == "pending"


def test_the_registrant_can_neither_approve_nor_reject(runtime: Runtime) -> None:
    approval = _request(runtime)
    for approve in (True, False):
        with pytest.raises(Forbidden, match="separation of duties: dana registered version 1"):
            _decide(runtime, approval, approve=approve, actor=DEV)
    assert runtime.approvals.get(approval.id).state == "pending"
    assert _audit(runtime, "approval.approve") == _audit(runtime, "approval.reject") == []


def test_approve_binds_records_and_audits(runtime: Runtime) -> None:
    approval = _request(runtime)
    decided = _decide(runtime, approval, roles=["approver", "admin", "approver"])
    version = runtime.versions.get("m", 1)
    assert decided.state == "approved" and decided.decided_by == "avery"
    assert decided.rationale == "AUC holds on every slice"
    assert decided.decider_roles == ["admin", "approver"]
    assert decided.decided_at is not None
    assert runtime.approvals.get(approval.id) == decided
    assert runtime.approvals.valid(version) == [decided]
    assert decided.to_dict(runtime.approvals.binding_of(version))["valid"] is True

    (requested,) = _audit(runtime, "approval.request")
    assert (requested["actor"], requested["target"], requested["reason"]) == (
        "dana",
        "m/1",
        "for pricing",
    )
    (approved,) = _audit(runtime, "approval.approve")
    assert (approved["actor"], approved["target"]) == ("avery", "m/1")
    assert approved["reason"] == "AUC holds on every slice"
    assert approved["before"] == {"state": "pending"}
    assert approved["after"]["state"] == "approved"


def test_reject_is_recorded_and_audited_and_counts_for_nothing(runtime: Runtime) -> None:
    approval = _request(runtime)
    rejected = _decide(runtime, approval, approve=False, rationale="no slice metrics")
    assert rejected.state == "rejected" and rejected.rationale == "no slice metrics"
    assert runtime.approvals.valid(runtime.versions.get("m", 1)) == []
    (event,) = _audit(runtime, "approval.reject")
    assert (event["actor"], event["reason"]) == ("avery", "no slice metrics")
    # Once decided, a new request may be made.
    assert _request(runtime).state == "pending"


def test_a_decision_is_made_once(runtime: Runtime) -> None:
    approval = _request(runtime)
    _decide(runtime, approval)
    for approve in (True, False):
        with pytest.raises(Conflict, match="already approved"):
            _decide(runtime, approval, approve=approve, actor=OTHER_APPROVER)
    with pytest.raises(NotFound):
        _decide(runtime, Approval(**{**approval.__dict__, "id": "0" * 32}))


def test_of_two_concurrent_decisions_exactly_one_wins(runtime: Runtime) -> None:
    approval = _request(runtime)
    start = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def decide(actor: Actor, approve: bool) -> None:
        start.wait()
        try:
            outcomes[actor.name] = _decide(runtime, approval, approve=approve, actor=actor)
        except Conflict as exc:
            outcomes[actor.name] = exc

    threads = [
        threading.Thread(target=decide, args=(APPROVER, True)),
        threading.Thread(target=decide, args=(OTHER_APPROVER, False)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    won = [o for o in outcomes.values() if isinstance(o, Approval)]
    lost = [o for o in outcomes.values() if isinstance(o, Conflict)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    stored = runtime.approvals.get(approval.id)
    assert (stored.state, stored.decided_by) == (won[0].state, won[0].decided_by)
    decisions = _audit(runtime, "approval.approve") + _audit(runtime, "approval.reject")
    assert [e["actor"] for e in decisions] == [won[0].decided_by]


def test_a_new_evaluation_makes_the_approval_stale_until_approved_again(
    runtime: Runtime,
) -> None:
    approved = _decide(runtime, _request(runtime))
    version = runtime.versions.get("m", 1)
    assert runtime.approvals.valid(version) == [approved]

    runtime.evaluations.record("m", 1, actor=DEV, metrics={"auc": 0.79})

    assert runtime.approvals.valid(version) == []
    current = runtime.approvals.binding_of(version)
    shown = runtime.approvals.get(approved.id).to_dict(current)
    assert shown["state"] == "approved"  # the decision stands; it no longer counts
    assert shown["valid"] is False
    assert shown["stale_because"] == ["evaluation record changed"]
    assert approved.binding.differences(current) == ["evaluation record"]

    renewed = _decide(runtime, _request(runtime, note="re-evaluated"), rationale="still fine")
    assert renewed.evaluation_digest == current.evaluation_digest
    assert runtime.approvals.valid(version) == [renewed]
    # Recording the same evidence again keeps it bound: the digest is the content's.
    evidence = runtime.evaluations.current(version)
    assert evidence is not None and evidence.evaluated_at is not None
    runtime.evaluations.record(
        "m", 1, actor=DEV, metrics={"auc": 0.79}, evaluated_at=evidence.evaluated_at
    )
    assert runtime.approvals.valid(version) == [renewed]


def test_the_queue_filters(runtime: Runtime) -> None:
    ready_version(runtime)  # version 2
    one = _decide(runtime, _request(runtime, 1))
    two = _request(runtime, 2)
    assert runtime.approvals.list() == [two, one]
    assert runtime.approvals.list(state="pending") == [two]
    assert runtime.approvals.list(state="approved") == [one]
    assert runtime.approvals.list(model="m", version=1) == [one]
    assert runtime.approvals.list(model="other") == []
    with pytest.raises(ValidationFailed) as caught:
        runtime.approvals.list(state="maybe")
    assert caught.value.details[0]["field"] == "state"


def test_evidence_changed_while_pending_supersedes_the_request(runtime: Runtime) -> None:
    """What the approver would approve must be what was asked for: a request whose
    evidence changed (a new evaluation) can no longer be decided; asking again for the
    new evidence supersedes it too."""
    first = _request(runtime)
    runtime.evaluations.record("m", 1, actor=DEV, metrics={"auc": 0.6})
    with pytest.raises(Conflict, match="evaluation record of version 1 .* changed since"):
        _decide(runtime, first)
    superseded = runtime.approvals.get(first.id)
    assert superseded.state == "superseded" and superseded.decided_by is None
    assert runtime.approvals.valid(runtime.versions.get("m", 1)) == []
    [event] = _audit(runtime, "approval.supersede")
    assert event["reason"] == "the evaluation record changed since the request"

    # A request pending while the evidence changes is superseded by the next request.
    second = _request(runtime)
    runtime.evaluations.record("m", 1, actor=DEV, metrics={"auc": 0.9})
    third = _request(runtime)
    assert runtime.approvals.get(second.id).state == "superseded"
    assert _decide(runtime, third).state == "approved"
    assert [a.id for a in runtime.approvals.valid(runtime.versions.get("m", 1))] == [third.id]
    assert len(_audit(runtime, "approval.supersede")) == 2

"""The ML Test Score: the pure scoring (known answers, the paper's bands), attestations,
and the automatic evidence read from a real runtime's records (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from slipway.audit import Actor
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.governance.testscore import (
    BANDS,
    SECTIONS,
    TEST_IDS,
    TITLES,
    Outcome,
    band,
    results_of,
    tally,
)
from slipway.monitoring.profile import build_profile
from slipway.registry.versions import Version
from slipway.runtime import Runtime
from slipway.store.tables import audit_events
from tests.conftest import pyfunc_runtime, ready_pyfunc_version

ADMIN = Actor("admin")
DEV = Actor("dana")
APPROVER = Actor("avery")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SIGNATURE = {"inputs": [{"name": "x", "type": "float"}], "classes": [0, 1]}
CONTRACT = {"inputs": [{"name": "x", "type": "float", "min": -100, "max": 100}]}
CLEAN_LINEAGE = {
    "code": {"git_commit": "0123456789abcdef0123", "dirty": False},
    "training_data": {"sha256": "b" * 64, "rows": 1000, "columns": ["x", "__label__"]},
    "parameters": {"threshold": 5.0},
}
EVIDENCE = "https://wiki.example.org/ml/churn/evidence"
PAPER_BAND_1_2 = (
    "There's been first pass at basic productionization, but additional investment may be needed."
)


# -- helpers shared with test_card.py and test_inventory.py ----------------------------------


def make_runtime(home: Path, database_url: str = "", **model: Any) -> Runtime:
    """A runtime with model ``m`` (owner ml-team) and nothing else."""
    runtime: Runtime = pyfunc_runtime(home, database_url)
    runtime.models.create(name="m", owner="ml-team", actor=DEV, **model)
    return runtime


def register(
    runtime: Runtime,
    *,
    model: str = "m",
    contract: bool = True,
    lineage: dict[str, Any] | None = None,
    profile: bool = False,
    threshold: float = 5.0,
) -> Version:
    """A ready pyfunc ThresholdModel version of ``model`` registered by dana."""
    reference = build_profile({"x": [float(i % 10) for i in range(200)]}) if profile else None
    version: Version = ready_pyfunc_version(
        runtime,
        model,
        "ThresholdModel",
        init={"threshold": threshold},
        actor=DEV,
        signature=SIGNATURE,
        example_rows=[{"x": 1.0}, {"x": 7.0}],
        lineage=lineage,
        contract=CONTRACT if contract else None,
        profile=reference.to_dict() if reference is not None else None,
    )
    return version


def approve(runtime: Runtime, number: int, model: str = "m") -> None:
    request = runtime.approvals.request(model, number, actor=DEV, note="please")
    runtime.approvals.decide(
        request.id, approve=True, rationale="meets the bar", actor=APPROVER, roles=["approver"]
    )


def how(score: dict[str, Any]) -> dict[str, str]:
    """Each test id -> automated | attested | none."""
    return {t["id"]: t["how"] for s in score["sections"].values() for t in s["tests"]}


def automated(score: dict[str, Any]) -> set[str]:
    return {test for test, found in how(score).items() if found == "automated"}


def sums(score: dict[str, Any]) -> dict[str, float]:
    return {name: s["score"] for name, s in score["sections"].items()}


@pytest.fixture
def runtime(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """Once on SQLite, once on PostgreSQL; the test pyfunc model is importable."""
    monkeypatch.syspath_prepend(str(ARTIFACTS))
    rt = make_runtime(tmp_path / "home", store_url)
    yield rt
    rt.close()


@pytest.fixture
def sqlite_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.syspath_prepend(str(ARTIFACTS))
    rt = make_runtime(tmp_path / "home")
    yield rt
    rt.close()


# -- the pure scoring ------------------------------------------------------------------------


def _results(points: dict[str, list[float]]) -> list[Outcome]:
    out = []
    for section, values in points.items():
        for i, value in enumerate(values, start=1):
            found = {1.0: "automated", 0.5: "attested", 0.0: "none"}[value]
            out.append(Outcome(f"{section}-{i}", value, found))
    return out


def test_known_answer_sections_3_5_2_4_1_5_give_1_5_and_its_band() -> None:
    result = tally(
        _results(
            {
                "data": [1, 1, 0.5, 0.5, 0.5, 0, 0],  # 3.5
                "model": [1, 0.5, 0.5, 0, 0, 0, 0],  # 2
                "infra": [1, 1, 1, 0.5, 0.5, 0, 0],  # 4
                "monitor": [1, 0.5, 0, 0, 0, 0, 0],  # 1.5
            }
        )
    )
    assert {k: v["score"] for k, v in result["sections"].items()} == {
        "data": 3.5,
        "model": 2.0,
        "infra": 4.0,
        "monitor": 1.5,
    }
    assert result["final"] == 1.5
    assert result["band"] == "(1, 2]"
    assert result["interpretation"] == PAPER_BAND_1_2
    tests = result["sections"]["data"]["tests"]
    assert [t["id"] for t in tests] == [f"data-{i}" for i in range(1, 8)]
    assert tests[0]["title"] == "Feature expectations are captured in a schema"


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        (0.0, "0"),
        (0.5, "(0, 1]"),
        (1.0, "(0, 1]"),
        (1.5, "(1, 2]"),
        (2.0, "(1, 2]"),
        (3.0, "(2, 3]"),
        (3.5, "(3, 5]"),
        (5.0, "(3, 5]"),
        (5.5, "> 5"),
        (7.0, "> 5"),
    ],
)
def test_band_boundaries_follow_the_paper(final: float, expected: str) -> None:
    label, meaning = band(final)
    assert label == expected
    assert meaning == {b[1]: b[2] for b in BANDS}[expected]


def test_the_rubric_has_28_tests_seven_per_section() -> None:
    assert len(TEST_IDS) == 28
    for section in SECTIONS:
        assert [t for t in TEST_IDS if t.startswith(f"{section}-")] == [
            f"{section}-{i}" for i in range(1, 8)
        ]
    assert TITLES["infra-6"] == "Models are canaried before serving"
    assert TITLES["monitor-7"] == "Prediction quality has not regressed"


def test_missing_tests_count_zero_and_automated_beats_attested() -> None:
    assert tally([])["final"] == 0.0
    from datetime import UTC, datetime

    from slipway.governance.testscore import Attestation

    attestation = Attestation(
        "id", "m", "data-1", EVIDENCE, "schema reviewed", "dana", datetime.now(UTC), None
    )
    results = {r.id: r for r in results_of({"data-1": "proof"}, {"data-1": attestation})}
    assert (results["data-1"].points, results["data-1"].how) == (1.0, "automated")
    attested = {r.id: r for r in results_of({}, {"data-1": attestation})}["data-1"]
    assert (attested.points, attested.how, attested.evidence_url) == (0.5, "attested", EVIDENCE)
    assert "schema reviewed" in attested.evidence


# -- attestations ----------------------------------------------------------------------------


def _actions(rt: Runtime, prefix: str) -> list[dict[str, Any]]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events)
            .where(audit_events.c.action.startswith(prefix))
            .order_by(audit_events.c.seq)
        ).all()
    return [r._asdict() for r in rows]


def test_a_fresh_model_scores_zero_and_two_attestations_add_one_point(runtime: Runtime) -> None:
    fresh = runtime.test_scores.score("m")
    assert (fresh["version"], fresh["endpoints"], fresh["final"]) == (None, [], 0.0)
    assert fresh["band"] == "0" and set(how(fresh).values()) == {"none"}

    runtime.test_scores.attest(
        "m", "data-2", evidence_url=EVIDENCE, note="ablation study", actor=DEV
    )
    runtime.test_scores.attest("m", "data-5", evidence_url=EVIDENCE, note="DPIA done", actor=DEV)
    score = runtime.test_scores.score("m")
    assert sums(score) == {"data": 1.0, "model": 0.0, "infra": 0.0, "monitor": 0.0}
    assert score["final"] == 0.0  # the weakest section decides
    [data_2] = [t for t in score["sections"]["data"]["tests"] if t["id"] == "data-2"]
    assert data_2["how"] == "attested" and data_2["points"] == 0.5
    assert data_2["evidence_url"] == EVIDENCE and data_2["attested_by"] == "dana"

    # The newest attestation counts; withdrawing takes it out.
    runtime.test_scores.attest(
        "m", "data-2", evidence_url=EVIDENCE + "/v2", note="redone", actor=APPROVER
    )
    [data_2] = [
        t
        for t in runtime.test_scores.score("m")["sections"]["data"]["tests"]
        if t["id"] == "data-2"
    ]
    assert (data_2["attested_by"], data_2["evidence_url"]) == ("avery", EVIDENCE + "/v2")
    withdrawn = runtime.test_scores.withdraw("m", "data-2", actor=DEV)
    assert len(withdrawn) == 2 and all(a.withdrawn_at is not None for a in withdrawn)
    assert sums(runtime.test_scores.score("m"))["data"] == 0.5
    with pytest.raises(NotFound):
        runtime.test_scores.withdraw("m", "data-2", actor=DEV)

    events = _actions(runtime, "testscore.")
    assert [e["action"] for e in events] == ["testscore.attest"] * 3 + ["testscore.withdraw"]
    assert events[0]["target"] == "m" and events[0]["after"]["test"] == "data-2"
    assert events[0]["reason"] == "ablation study"
    assert len(events[-1]["before"]["attestations"]) == 2


def test_attestation_input_is_checked_field_by_field(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    with pytest.raises(ValidationFailed) as bad_test:
        rt.test_scores.attest("m", "data-9", evidence_url=EVIDENCE, note="x", actor=DEV)
    assert bad_test.value.details[0]["field"] == "test"
    assert "data-1" in bad_test.value.details[0]["reason"]
    assert "monitor-7" in bad_test.value.details[0]["reason"]
    for url in ("ftp://example.org/x", "not a url", "", "https://"):
        with pytest.raises(ValidationFailed) as bad_url:
            rt.test_scores.attest("m", "data-2", evidence_url=url, note="x", actor=DEV)
        assert bad_url.value.details[0]["field"] == "evidence_url"
    with pytest.raises(ValidationFailed) as no_note:
        rt.test_scores.attest("m", "data-2", evidence_url=EVIDENCE, note="  ", actor=DEV)
    assert no_note.value.details[0]["field"] == "note"
    with pytest.raises(NotFound):
        rt.test_scores.attest("nope", "data-2", evidence_url=EVIDENCE, note="x", actor=DEV)
    with pytest.raises(ValidationFailed):
        rt.test_scores.withdraw("m", "infra-8", actor=DEV)
    rt.models.retire("m", actor=DEV)
    with pytest.raises(Conflict):
        rt.test_scores.attest("m", "data-2", evidence_url=EVIDENCE, note="x", actor=DEV)
    assert _actions(rt, "testscore.") == []


# -- automatic evidence ------------------------------------------------------------------------


def test_deploy_rollout_and_redeploy_are_scored_from_the_records(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    register(rt)
    assert automated(rt.test_scores.score("m")) == {"infra-2"}  # ready, serving nowhere

    rt.endpoints.deploy("e", model="m", version=1, actor=ADMIN)
    after_deploy = rt.test_scores.score("m")
    assert (after_deploy["version"], after_deploy["endpoints"]) == (1, ["e"])
    # The contract is checked on every request; the default monitors watch violations,
    # model age, NaN outputs and latency; every prediction is recorded.
    assert automated(after_deploy) == {
        "data-1",
        "infra-2",
        "infra-5",
        "monitor-2",
        "monitor-4",
        "monitor-5",
        "monitor-6",
    }
    [data_1] = [t for t in after_deploy["sections"]["data"]["tests"] if t["id"] == "data-1"]
    assert "e: v1 has a stored contract" in data_1["evidence"]

    # A rollout to v2 whose canary took traffic, promoted: canaried, and v1 to go back to.
    register(rt, threshold=4.0)
    rt.rollouts.start("e", version=2, actor=ADMIN, step_duration_s=60)
    rt.check_rollouts()  # opens the first step: the canary takes its share
    rt.rollouts.promote("e", actor=ADMIN, reason="looks good")
    promoted = rt.test_scores.score("m")
    assert promoted["version"] == 2
    assert {"infra-6", "infra-7"} <= automated(promoted)

    # A plain deploy of v3: not canaried, but v2 remains to roll back to.
    register(rt, threshold=3.0)
    rt.endpoints.deploy("e", model="m", version=3, actor=ADMIN)
    redeployed = rt.test_scores.score("m")
    assert "infra-6" not in automated(redeployed) and "infra-7" in automated(redeployed)

    # A second endpoint without a latency monitor: latency is not watched everywhere.
    rt.endpoints.deploy("e2", model="m", version=3, actor=ADMIN)
    rt.monitors.update("e2", "latency-p99", {"enabled": False}, actor=ADMIN)
    both = rt.test_scores.score("m")
    assert both["endpoints"] == ["e", "e2"]
    assert "monitor-6" not in automated(both) and "monitor-2" in automated(both)


def test_a_rollout_promoted_before_its_canary_took_traffic_is_not_a_canary(
    sqlite_runtime: Runtime,
) -> None:
    rt = sqlite_runtime
    register(rt)
    register(rt, threshold=4.0)
    rt.endpoints.deploy("e", model="m", version=1, actor=ADMIN)
    rt.rollouts.start("e", version=2, actor=ADMIN)
    rt.rollouts.promote("e", actor=ADMIN, reason="in a hurry")  # still pending: no step
    assert "infra-6" not in automated(rt.test_scores.score("m"))


def test_version_evidence_lineage_approval_baseline_slices_and_policies(
    sqlite_runtime: Runtime,
) -> None:
    rt = sqlite_runtime
    register(rt, lineage={**CLEAN_LINEAGE, "code": {"git_commit": "abc", "dirty": True}})
    register(rt, lineage=CLEAN_LINEAGE, profile=True)
    rt.endpoints.deploy("prod-m", model="m", version=2, actor=ADMIN)
    found = automated(rt.test_scores.score("m"))
    assert {"infra-1", "monitor-3"} <= found  # clean lineage; drift against its reference
    assert not {"model-1", "model-5", "model-6", "infra-4"} & found

    rt.evaluations.record(
        "m",
        2,
        actor=DEV,
        metrics={"auc": 0.86, "log_loss": 0.31},
        baseline={"auc": 0.5, "log_loss": 0.69},
        slices={"region=eu": {"auc": 0.84}, "region=us": {"auc": 0.87}},
    )
    approve(rt, 2)
    rt.policies.put(
        "production",
        "applies_to: {endpoints: ['prod-*']}\n"
        "checks:\n"
        "  - {type: metric, metric: auc, op: '>=', value: 0.8, per_slice: true}\n",
        actor=ADMIN,
    )
    score = rt.test_scores.score("m")
    assert {"model-1", "model-5", "model-6", "infra-4"} <= automated(score)
    evidence = {t["id"]: t["evidence"] for s in score["sections"].values() for t in s["tests"]}
    assert "approved by avery" in evidence["model-1"]
    assert (
        "auc 0.86 vs 0.5" in evidence["model-5"] and "log_loss 0.31 vs 0.69" in evidence["model-5"]
    )
    assert "policy production" in evidence["model-6"]

    # Worse than the baseline on a lower-is-better metric: a simpler model is better.
    rt.evaluations.record(
        "m", 2, actor=DEV, metrics={"auc": 0.86, "mae": 0.4}, baseline={"auc": 0.5, "mae": 0.3}
    )
    after = automated(rt.test_scores.score("m"))
    # The new record also made the approval stale, and it has no slices any more.
    assert not {"model-5", "model-1", "model-6"} & after and "infra-4" in after


def test_labels_arriving_prove_online_quality_monitoring(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    # Offline accuracy at registration: the default accuracy monitor is derived from it.
    register(rt, lineage={"metrics": {"accuracy": 0.9}})
    rt.endpoints.deploy("e", model="m", version=1, actor=ADMIN)
    assert not {"model-2", "monitor-7"} & automated(rt.test_scores.score("m"))

    loop = asyncio.new_event_loop()
    loop.run_until_complete(rt.writer.start())
    try:
        answered = loop.run_until_complete(
            rt.inference.predict("e", [{"x": 7.0}, {"x": 1.0}], caller="t", route="plain")
        )
    finally:
        loop.run_until_complete(rt.writer.stop())
        loop.close()
    ids = answered.prediction_ids()
    report = rt.feedback.submit("e", [{"prediction_id": ids[0], "label": 1}], actor=ADMIN)
    assert report["accepted"] == 1
    score = rt.test_scores.score("m")
    assert {"model-2", "monitor-7"} <= automated(score)


# -- the known answer, end to end -------------------------------------------------------------


def test_known_answer_end_to_end_from_records_and_attestations(runtime: Runtime) -> None:
    rt = runtime
    register(rt)
    register(rt, lineage=CLEAN_LINEAGE)
    rt.evaluations.record("m", 2, actor=DEV, metrics={"auc": 0.9}, baseline={"auc": 0.5})
    approve(rt, 2)
    rt.endpoints.deploy("e", model="m", version=1, actor=ADMIN)
    rt.endpoints.deploy("e", model="m", version=2, actor=ADMIN)
    for monitor in ("model-age", "nan-outputs", "latency-p99"):
        rt.monitors.update("e", monitor, {"enabled": False}, actor=ADMIN)
    for test in ("data-2", "data-3", "data-4", "data-5", "data-7", "monitor-1"):
        rt.test_scores.attest("m", test, evidence_url=EVIDENCE, note=f"{test} done", actor=DEV)

    score = rt.test_scores.score("m")
    assert automated(score) == {
        "data-1",  # 1 + 5 attested x 0.5 = 3.5
        "model-1",
        "model-5",  # 2
        "infra-1",
        "infra-2",
        "infra-5",
        "infra-7",  # 4
        "monitor-2",  # 1 + 1 attested x 0.5 = 1.5
    }
    assert sums(score) == {"data": 3.5, "model": 2.0, "infra": 4.0, "monitor": 1.5}
    assert (score["final"], score["band"]) == (1.5, "(1, 2]")
    assert score["interpretation"] == PAPER_BAND_1_2
    assert (score["model"], score["version"], score["endpoints"]) == ("m", 2, ["e"])

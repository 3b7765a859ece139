"""Policies as code on the real services: the YAML language, versions and audit of each
change, and the deploy gate — each check failing alone blocks a deploy with its own
reason, all passing allow it, several failing are all listed."""

from __future__ import annotations

import itertools
import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from slipway.audit import Actor
from slipway.errors import Forbidden, NotFound, PolicyBlocked, ValidationFailed
from slipway.governance.policy_spec import parse_policy
from slipway.ids import utcnow
from slipway.monitoring.profile import build_profile
from slipway.registry.versions import Version
from slipway.runtime import Runtime
from slipway.settings import Settings
from slipway.store.tables import audit_events

ADMIN = Actor("admin")
DEV = Actor("dana")
APPROVER = Actor("avery")
SIGNATURE = {"inputs": [{"name": "x0", "type": "float"}, {"name": "x1", "type": "float"}]}
ROWS = [{"x0": 0.0, "x1": 0.5}, {"x0": 1.0, "x1": 1.0}]
CONTRACT = {
    "inputs": [
        {"name": "x0", "type": "float", "min": 0, "max": 10},
        {"name": "x1", "type": "float"},
    ]
}
# x0 may no longer be above 5: a request the contract above accepts is now refused.
NARROWER = {
    "inputs": [{"name": "x0", "type": "float", "min": 0, "max": 5}, {"name": "x1", "type": "float"}]
}
GOOD = {
    "metrics": {"auc": 0.9},
    "slices": {"region=eu": {"auc": 0.88}, "region=us": {"auc": 0.91}},
    "baseline": {"auc": 0.6},
}
METADATA = {
    "oncall": "#ml-oncall",
    "runbook_url": "https://runbooks/churn",
    "intended_use": "rank retention offers",
    "risk_tier": "medium",
}
POLICY = """\
description: what a production endpoint needs
applies_to:
  endpoints: ["prod-*"]
checks:
  - type: metadata
    require: [owner, oncall, runbook_url, intended_use, risk_tier, contract, reference_profile]
  - id: auc-floor
    type: metric
    metric: auc
    op: ">="
    value: 0.80
  - id: auc-slices
    type: metric
    metric: auc
    op: ">="
    value: 0.75
    per_slice: true
  - id: auc-vs-current
    type: metric
    metric: auc
    op: ">="
    relative_to: current
    delta: -0.01
  - type: baseline
    metrics: {auc: ">="}
    margin: 0.05
  - type: no_breaking_change
  - type: artifact
    allow_code: false
  - type: evaluation_age
    max_days: 30
  - type: approvals
    by_risk_tier:
      low: {count: 0}
      medium: {count: 1, role: approver}
      high: {count: 2, role: approver}
"""
ALL_CHECKS = [
    "metadata",
    "auc-floor",
    "auc-slices",
    "auc-vs-current",
    "baseline",
    "no_breaking_change",
    "artifact",
    "evaluation_age",
    "approvals",
]


def make_runtime(home: Path, database_url: str = "") -> Runtime:
    settings = Settings({"home": str(home), "database_url": database_url}, environ={})
    return Runtime.from_settings(settings)


def _skops(seed: int) -> bytes:
    """A small LogisticRegression in skops format; ``seed`` makes the bytes unique, so
    tampering with one version's artifact leaves the others' alone."""
    import io

    import skops.io
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 10, size=(40, 2))
    y = (X[:, 0] > 5).astype(int)
    buffer = io.BytesIO()
    skops.io.dump(LogisticRegression().fit(X, y), buffer)
    return buffer.getvalue()


@dataclass
class Governed:
    """A runtime with the ``production`` policy on ``prod-*`` and helpers to make models
    and versions that pass it, or miss exactly what a test says."""

    rt: Runtime
    seeds: Iterator[int] = field(default_factory=itertools.count)

    def model(self, name: str, **fields: Any) -> str:
        values = {**METADATA, **fields}
        self.rt.models.create(
            name=name,
            owner="ml-team",
            actor=DEV,
            **{k: v for k, v in values.items() if v is not None},
        )
        return name

    def version(
        self,
        model: str,
        *,
        evaluation: dict[str, Any] | None = GOOD,
        contract: dict[str, Any] | None = CONTRACT,
        profile: bool = True,
        flavor: str = "sklearn",
        approve: bool = True,
        roles: tuple[str, ...] = ("approver",),
    ) -> Version:
        rt = self.rt
        if flavor == "pyfunc":
            artifact = json.dumps({"class": "pyfunc_example:ThresholdModel"}).encode()
        else:
            artifact = _skops(next(self.seeds))
        info = rt.artifacts.put_bytes(artifact)
        version = rt.versions.register(
            model,
            artifact_sha256=info.sha256,
            flavor=flavor,
            signature=SIGNATURE,
            example_rows=ROWS,
            actor=DEV,
            contract=contract,
            profile=build_profile(ROWS).to_dict() if profile else None,
        )
        version = rt.versions.set_status(version, "ready", actor=DEV)
        if evaluation is not None:
            rt.evaluations.record(model, version.number, actor=DEV, **evaluation)
        if approve:
            request = rt.approvals.request(model, version.number, actor=DEV)
            rt.approvals.decide(
                request.id, approve=True, rationale="meets the bar", actor=APPROVER, roles=roles
            )
        return version

    def deploy(self, endpoint: str, version: Version, **options: Any) -> Any:
        return self.rt.endpoints.deploy(
            endpoint, model=version.model, version=version.number, actor=ADMIN, **options
        )


def _audit(rt: Runtime, action: str) -> list[dict[str, Any]]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events).where(audit_events.c.action == action).order_by(audit_events.c.seq)
        ).all()
    return [r._asdict() for r in rows]


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Governed]:
    """One runtime for the module (SQLite); each test uses its own models and endpoints."""
    rt = make_runtime(tmp_path_factory.mktemp("policies") / "home")
    rt.policies.put("production", POLICY, actor=ADMIN)
    yield Governed(rt)
    rt.close()


# -- the language ---------------------------------------------------------------------


def test_a_policy_parses_with_defaults_filled_in() -> None:
    spec = parse_policy("production", POLICY)
    assert [c.id for c in spec.checks] == ALL_CHECKS
    assert spec.actions == ("deploy", "rollout_start", "promote")
    assert spec.applies("prod-churn", "deploy") and not spec.applies("staging-churn", "deploy")
    checks = {c.id: c.to_dict() for c in spec.checks}
    assert checks["auc-floor"] == {
        "id": "auc-floor",
        "type": "metric",
        "metric": "auc",
        "op": ">=",
        "value": 0.8,
        "per_slice": False,
    }
    assert checks["artifact"]["formats"] == ["sklearn", "onnx", "xgboost", "lightgbm"]
    assert checks["approvals"]["by_risk_tier"]["high"] == {"count": 2, "role": "approver"}
    # The stored form reads back to the same policy.
    assert type(spec).from_dict("production", spec.to_dict()) == spec


def test_check_ids_default_to_the_type_then_numbered() -> None:
    spec = parse_policy(
        "p",
        textwrap.dedent("""\
            applies_to: {stages: ["prod"]}
            on: [promote]
            checks:
              - {type: metric, metric: auc, op: ">=", value: 0.8}
              - {type: metric, metric: f1, op: ">=", value: 0.5}
              - {id: metric-2, type: evaluation_age, max_days: 7}
              - {type: approvals, count: 1}
        """),
    )
    assert [c.id for c in spec.checks] == ["metric", "metric-3", "metric-2", "approvals"]
    assert spec.applies("prod", "promote") and not spec.applies("prod", "deploy")
    # count/role without tiers: the same rule for every tier, role approver by default.
    rule = spec.checks[3].options["by_risk_tier"]
    assert rule == {t: {"count": 1, "role": "approver"} for t in ("low", "medium", "high")}


_BASE = 'applies_to: {endpoints: ["*"]}\n'


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("applies_to: [unclosed\n", "source"),
        ("- just\n- a list\n", "source"),
        ("!!python/object/apply:os.system ['true']\n", "source"),
        ("checks: [{type: metadata, require: [owner]}]\n", "applies_to"),
        (_BASE + "owner: me\nchecks: [{type: artifact}]\n", "owner"),
        (_BASE + "name: other\nchecks: [{type: artifact}]\n", "name"),
        (_BASE + "on: [deploy, ship]\nchecks: [{type: artifact}]\n", "on[1]"),
        (_BASE + "checks: []\n", "checks"),
        (_BASE + "checks: [{type: artifact}, {type: nope}]\n", "checks[1].type"),
        (_BASE + "checks: [{type: artifact, allow_cod: true}]\n", "checks[0].allow_cod"),
        (_BASE + "checks: [{type: artifact, formats: [pyfunc]}]\n", "checks[0].formats"),
        (
            _BASE
            + 'checks: [{type: artifact}, {type: artifact}, {type: metric, metric: auc, op: "=>", value: 1}]\n',  # noqa: E501
            "checks[2].op",
        ),
        (_BASE + 'checks: [{type: metric, metric: auc, op: ">="}]\n', "checks[0]"),
        (
            _BASE + 'checks: [{type: metric, metric: auc, op: ">=", value: high}]\n',
            "checks[0].value",
        ),
        (
            _BASE + "checks: [{type: metric, metric: auc, op: '>=', relative_to: current, "
            "per_slice: true}]\n",
            "checks[0].per_slice",
        ),
        (
            _BASE + "checks: [{type: metric, metric: auc, op: '>=', relative_to: best}]\n",
            "checks[0].relative_to",
        ),
        (
            _BASE + "checks: [{type: metadata, require: [owner, shoe_size]}]\n",
            "checks[0].require[1]",
        ),
        (_BASE + "checks: [{type: baseline, metrics: {auc: '>'}}]\n", "checks[0].metrics.auc"),
        (
            _BASE + "checks: [{type: baseline, metrics: {auc: '>='}, margin: -1}]\n",
            "checks[0].margin",
        ),
        (_BASE + "checks: [{type: evaluation_age, max_days: 0}]\n", "checks[0].max_days"),
        (_BASE + "checks: [{type: approvals}]\n", "checks[0]"),
        (
            _BASE + "checks: [{type: approvals, by_risk_tier: {high: {count: 2, role: boss}}}]\n",
            "checks[0].by_risk_tier.high.role",
        ),
        (
            _BASE + "checks: [{type: approvals, by_risk_tier: {extreme: {count: 2}}}]\n",
            "checks[0].by_risk_tier.extreme",
        ),
        (
            _BASE
            + "checks: [{id: a, type: artifact}, {id: a, type: metadata, require: [owner]}]\n",
            "checks[1].id",
        ),  # noqa: E501
    ],
)
def test_bad_policies_name_the_path_of_the_bad_value(source: str, path: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_policy("p", source)
    assert refused.value.details[0]["field"] == path, refused.value.message


# -- stored, versioned, audited (SQLite and PostgreSQL) -------------------------------


@pytest.fixture
def runtime(store_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(tmp_path / "home", store_url)
    yield rt
    rt.close()


def test_every_change_bumps_the_revision_and_is_audited(runtime: Runtime) -> None:
    first = runtime.policies.put("production", POLICY, actor=ADMIN)
    assert (first.revision, first.source, first.created_by) == (1, POLICY, "admin")
    stricter = POLICY.replace("value: 0.80", "value: 0.85")
    second = runtime.policies.put("production", stricter, actor=Actor("root"))
    assert (second.revision, second.created_by, second.updated_by) == (2, "admin", "root")
    # The same text again is no change: no revision, no event.
    assert runtime.policies.put("production", stricter, actor=ADMIN).revision == 2
    got = runtime.policies.get("production")
    assert got.revision == 2 and got.source == stricter
    assert got.spec.checks[1].options["value"] == 0.85
    assert [p.name for p in runtime.policies.list()] == ["production"]

    created, updated = _audit(runtime, "policy.create"), _audit(runtime, "policy.update")
    assert [e["after"] for e in created] == [{"revision": 1, "source": POLICY}]
    assert len(updated) == 1
    assert updated[0]["before"] == {"revision": 1, "source": POLICY}
    assert updated[0]["after"] == {"revision": 2, "source": stricter}
    assert (updated[0]["actor"], updated[0]["target"]) == ("root", "production")

    with pytest.raises(ValidationFailed):  # a bad edit changes nothing
        runtime.policies.put("production", "checks: nope", actor=ADMIN)
    assert runtime.policies.get("production").revision == 2

    runtime.policies.delete("production", actor=ADMIN)
    assert _audit(runtime, "policy.delete")[0]["before"] == {"revision": 2, "source": stricter}
    with pytest.raises(NotFound):
        runtime.policies.get("production")
    with pytest.raises(NotFound):
        runtime.policies.delete("production", actor=ADMIN)


def test_the_gate_on_both_stores(runtime: Runtime) -> None:
    """The deploy gate end to end on each backend: allowed, then a relative drop and a
    stale approval blocked."""
    gov = Governed(runtime)
    runtime.policies.put("production", POLICY, actor=ADMIN)
    gov.model("churn")
    good = gov.version("churn")
    assert gov.deploy("prod-churn", good).version == good.number
    worse = gov.version("churn", evaluation={**GOOD, "metrics": {"auc": 0.85}})
    with pytest.raises(PolicyBlocked) as blocked:
        gov.deploy("prod-churn", worse)
    assert blocked.value.details == [
        {
            "field": "production.auc-vs-current",
            "reason": "auc 0.85 < current 0.9 - 0.01 (version 1)",
        }
    ]
    better = gov.version("churn", evaluation={**GOOD, "metrics": {"auc": 0.93}})
    runtime.evaluations.record("churn", better.number, actor=DEV, **GOOD)  # after approval
    with pytest.raises(PolicyBlocked) as stale:
        gov.deploy("prod-churn", better)
    assert [d["field"] for d in stale.value.details] == ["production.approvals"]
    assert "stale: avery — evaluation record changed" in stale.value.details[0]["reason"]
    assert runtime.endpoints.get("prod-churn").version == good.number


# -- the deploy gate: each check failing alone ----------------------------------------


def test_a_version_passing_every_check_is_deployed_and_the_policy_is_audited(
    governed: Governed,
) -> None:
    rt = governed.rt
    model = governed.model("m-good")
    first = governed.version(model)
    report = rt.policies.evaluate(model, first.number, endpoint="prod-good")
    assert report.allowed, report.to_dict()
    assert [c.id for c in report.policies[0].checks] == ALL_CHECKS
    reasons = {c.id: c.reason for c in report.policies[0].checks}
    assert reasons["auc-vs-current"] == "no current version to compare"
    assert reasons["auc-slices"] == "auc 0.9 >= 0.75 (and in all 2 slices)"
    assert (
        reasons["approvals"] == "risk tier medium: 1 of 1 approvals by role approver (valid: avery)"
    )

    assert governed.deploy("prod-good", first).version == first.number
    second = governed.version(model)
    governed.deploy("prod-good", second)  # now compared with version 1, and as good
    deploys = [e for e in _audit(rt, "endpoint.deploy") if e["target"] == "prod-good"]
    policy = deploys[-1]["after"]["policy"]
    assert policy["allowed"] is True
    assert [(p["name"], p["revision"]) for p in policy["policies"]] == [("production", 1)]
    checks = {c["id"]: c for c in policy["policies"][0]["checks"]}
    assert {c["status"] for c in checks.values()} == {"pass"}
    assert checks["auc-vs-current"]["reason"] == "auc 0.9 >= current 0.9 - 0.01 (version 1)"


@dataclass(frozen=True)
class Case:
    check: str  # the id of the one check that must fail
    reason: str  # all of it, or a part of it with ``partial``
    model_fields: dict[str, Any] = field(default_factory=dict)
    version: dict[str, Any] = field(default_factory=dict)
    current: bool = False  # deploy a good version first: the endpoint has a current one
    deploy: dict[str, Any] = field(default_factory=dict)
    partial: bool = False


CASES = {
    "metadata": Case(
        "metadata", "oncall, runbook_url missing", {"oncall": None, "runbook_url": None}
    ),
    "reference-profile": Case("metadata", "reference_profile missing", version={"profile": False}),
    "contract": Case("metadata", "contract missing", version={"contract": None}),
    "metric": Case(
        "auc-floor", "auc 0.78 < 0.8", version={"evaluation": {**GOOD, "metrics": {"auc": 0.78}}}
    ),  # noqa: E501
    "per-slice": Case(
        "auc-slices",
        "slice region=eu: auc 0.71 < 0.75",
        version={
            "evaluation": {
                **GOOD,
                "slices": {"region=eu": {"auc": 0.71}, "region=us": {"auc": 0.9}},
            }
        },  # noqa: E501
    ),
    "relative": Case(
        "auc-vs-current",
        "auc 0.85 < current 0.9 - 0.01 (version 1)",
        version={"evaluation": {**GOOD, "metrics": {"auc": 0.85}}},
        current=True,
    ),
    "baseline": Case(
        "baseline",
        "auc 0.9 < baseline 0.88 + 0.05",
        version={"evaluation": {**GOOD, "baseline": {"auc": 0.88}}},
    ),
    # allow_breaking lets a deploy through the contract check; the policy still blocks.
    "breaking-change": Case(
        "no_breaking_change",
        "1 breaking contract change(s) against version 1: x0: max lowered 10 -> 5",
        version={"contract": NARROWER},
        current=True,
        deploy={"allow_breaking": True, "reason": "callers were told"},
    ),
    "code-artifact": Case(
        "artifact",
        "flavor pyfunc is Python code, refused unless allow_code: true",
        version={"flavor": "pyfunc"},
    ),
    "tampered-artifact": Case("artifact", "artifact hash mismatch", partial=True),
    "evaluation-age": Case(
        "evaluation_age",
        "evaluation is 40.0 days old (max 30)",
        version={"evaluation": {**GOOD, "evaluated_at": "40 days ago"}},
    ),
    "no-approval": Case(
        "approvals",
        "risk tier medium: 0 of 1 approvals by role approver (no valid approval)",
        version={"approve": False},
    ),
    "approval-without-the-role": Case(
        "approvals",
        "risk tier medium: 0 of 1 approvals by role approver "
        "(no valid approval; without role approver: avery)",
        version={"roles": ("operator",)},
    ),
    "high-risk-needs-two": Case(
        "approvals",
        "risk tier high: 1 of 2 approvals by role approver (valid: avery)",
        {"risk_tier": "high"},
    ),
    "stale-approval": Case(
        "approvals",
        "stale: avery — evaluation record changed",
        version={"stale": True},
        partial=True,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_check_failing_alone_blocks_the_deploy_with_its_reason(
    governed: Governed, name: str
) -> None:
    case = CASES[name]
    rt = governed.rt
    model = governed.model(f"m-{name}", **case.model_fields)
    endpoint = f"prod-{name}"
    if case.current:
        governed.deploy(endpoint, governed.version(model))
    options = dict(case.version)
    stale = options.pop("stale", False)
    evaluation = options.get("evaluation")
    if evaluation is not None and evaluation.get("evaluated_at") == "40 days ago":
        when = (utcnow() - timedelta(days=40)).isoformat()
        options["evaluation"] = {**evaluation, "evaluated_at": when}
    version = governed.version(model, **options)
    if stale:  # a new record after the approval: it no longer counts
        rt.evaluations.record(
            model, version.number, actor=DEV, **{**GOOD, "metrics": {"auc": 0.91}}
        )
    if name == "tampered-artifact":
        path = rt.artifacts.local_path(version.artifact_sha256)
        assert path is not None
        Path(path).write_bytes(b"not the bytes that were approved")

    with pytest.raises(PolicyBlocked) as blocked:
        governed.deploy(endpoint, version, **case.deploy)
    details = blocked.value.details
    assert [d["field"] for d in details] == [f"production.{case.check}"], details
    if case.partial:
        assert case.reason in details[0]["reason"]
    else:
        assert details[0]["reason"] == case.reason
    assert "blocked by policy production: 1 check(s) failed" in blocked.value.message
    # Nothing changed: the endpoint serves what it served before, or does not exist.
    if case.current:
        assert rt.endpoints.get(endpoint).version == version.number - 1
    else:
        with pytest.raises(NotFound):
            rt.endpoints.get(endpoint)
    refused = [e for e in _audit(rt, "policy.blocked") if e["target"] == endpoint]
    assert len(refused) == 1 and refused[0]["after"]["allowed"] is False


def test_several_failed_checks_are_all_listed(governed: Governed) -> None:
    rt = governed.rt
    model = governed.model("m-many", oncall=None)
    version = governed.version(model, evaluation=None, approve=False)
    with pytest.raises(PolicyBlocked) as blocked:
        governed.deploy("prod-many", version)
    assert blocked.value.details == [
        {"field": "production.metadata", "reason": "oncall missing"},
        {"field": "production.auc-floor", "reason": "no evaluation record"},
        {"field": "production.auc-slices", "reason": "no evaluation record"},
        {"field": "production.auc-vs-current", "reason": "no evaluation record"},
        {"field": "production.baseline", "reason": "no evaluation record"},
        {"field": "production.evaluation_age", "reason": "no evaluation record"},
        {
            "field": "production.approvals",
            "reason": "risk tier medium: 0 of 1 approvals by role approver (no valid approval)",
        },
    ]
    assert "7 check(s) failed" in blocked.value.message
    # The dry run tells the same without a side effect.
    before = len(_audit(rt, "policy.blocked"))
    report = rt.policies.evaluate(model, version.number, endpoint="prod-many")
    assert report.failures() == blocked.value.details
    assert len(_audit(rt, "policy.blocked")) == before


def test_a_metric_missing_from_the_record_fails_naming_it(governed: Governed) -> None:
    model = governed.model("m-f1-only")
    version = governed.version(model, evaluation={"metrics": {"f1": 0.9}})
    report = governed.rt.policies.evaluate(model, version.number, endpoint="prod-f1-only")
    reasons = {c.id: c.reason for c in report.policies[0].failed}
    assert reasons["auc-floor"] == "auc not in the evaluation record (has: f1)"
    assert reasons["baseline"] == "auc not in the evaluation record"


def test_endpoints_no_policy_applies_to_are_not_gated(governed: Governed) -> None:
    model = governed.model("m-free", oncall=None)
    version = governed.version(model, evaluation=None, approve=False)
    report = governed.rt.policies.evaluate(model, version.number, endpoint="staging-free")
    assert report.to_dict()["allowed"] is True and report.policies == ()
    governed.deploy("staging-free", version)
    deploys = [e for e in _audit(governed.rt, "endpoint.deploy") if e["target"] == "staging-free"]
    assert "policy" not in deploys[0]["after"]


def test_a_low_risk_model_needs_no_approval(governed: Governed) -> None:
    model = governed.model("m-low", risk_tier="low")
    version = governed.version(model, approve=False)
    governed.deploy("prod-low", version)
    report = governed.rt.policies.evaluate(model, version.number, endpoint="prod-low")
    approvals = next(c for c in report.policies[0].checks if c.id == "approvals")
    assert (approvals.passed, approvals.reason) == (True, "risk tier low needs no approval")


def test_who_registered_a_version_cannot_approve_it(governed: Governed) -> None:
    model = governed.model("m-self")
    version = governed.version(model, approve=False)
    request = governed.rt.approvals.request(model, version.number, actor=DEV)
    with pytest.raises(Forbidden, match="separation of duties"):
        governed.rt.approvals.decide(
            request.id, approve=True, rationale="mine", actor=DEV, roles=["approver"]
        )


def test_the_dry_run_refuses_unknown_actions(governed: Governed) -> None:
    model = governed.model("m-dry")
    version = governed.version(model)
    with pytest.raises(ValidationFailed) as refused:
        governed.rt.policies.evaluate(model, version.number, endpoint="prod-x", action="ship")
    assert refused.value.details[0]["field"] == "action"

"""Analysis templates: defaults, partial specs, validation naming the dotted field, and
the template service on a real store (both backends), audited."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import Engine, select

from slipway.audit import Actor
from slipway.errors import Conflict, NotFound, ValidationFailed
from slipway.rollout.templates import (
    CHECKS,
    DEFAULT,
    AnalysisTemplate,
    CheckSpec,
    TemplateService,
)
from slipway.store.tables import analysis_templates, audit_events

ALICE = Actor("alice", token_id="tok-1", request_id="req-1")


# -- the template --------------------------------------------------------------------------
def test_default_thresholds() -> None:
    checks = DEFAULT.checks
    assert tuple(checks) == CHECKS
    assert checks["error_rate"] == CheckSpec(0.01, 100)
    assert checks["latency_p99"] == CheckSpec(1.5, 200, slack=5.0)
    assert checks["contract_violation_rate"] == CheckSpec(0.01, 100)
    assert checks["output_shift"] == CheckSpec(0.1, 500)
    assert checks["agreement"] == CheckSpec(0.9, 200)
    assert checks["label_quality"] == CheckSpec(0.02, 100)
    assert all(c.critical and c.enabled for c in checks.values())
    assert DEFAULT.inconclusive_wait == 1.0


def test_default_is_read_only() -> None:
    with pytest.raises(TypeError):
        DEFAULT.checks["error_rate"] = CheckSpec(0.5, 1)  # type: ignore[index]


def test_to_dict_round_trips() -> None:
    data = DEFAULT.to_dict()
    assert set(data) == {"name", "description", "inconclusive_wait", "checks"}
    assert data["checks"]["latency_p99"] == {
        "threshold": 1.5,
        "min_samples": 200,
        "critical": True,
        "enabled": True,
        "slack": 5.0,
    }
    assert AnalysisTemplate.from_dict("default", data) == DEFAULT


def test_partial_spec_fills_the_rest_from_default() -> None:
    spec = {"checks": {"latency_p99": {"threshold": 2}}, "inconclusive_wait": 2}
    template = AnalysisTemplate.from_dict("slow-ok", spec)
    assert template.name == "slow-ok"
    assert template.inconclusive_wait == 2.0
    assert template.checks["latency_p99"] == CheckSpec(2.0, 200, slack=5.0)
    assert isinstance(template.checks["latency_p99"].threshold, float)
    for name in CHECKS:
        if name != "latency_p99":
            assert template.checks[name] == DEFAULT.checks[name]
    assert template.description == DEFAULT.description


def test_overrides_apply_on_top_of_their_base() -> None:
    base = AnalysisTemplate.from_dict(
        "strict", {"checks": {"error_rate": {"threshold": 0.001, "min_samples": 500}}}
    )
    overridden = base.with_overrides(
        {"checks": {"agreement": {"enabled": False}, "error_rate": {"critical": False}}}
    )
    assert overridden.name == "strict"
    # What the override leaves alone is the base's, not the default's.
    assert overridden.checks["error_rate"] == CheckSpec(0.001, 500, critical=False)
    assert overridden.checks["agreement"].enabled is False
    assert base.with_overrides(None) is base
    assert base.with_overrides({}) == base


def test_name_in_spec_must_match() -> None:
    assert AnalysisTemplate.from_dict("x", {"name": "x"}).name == "x"
    with pytest.raises(ValidationFailed) as err:
        AnalysisTemplate.from_dict("x", {"name": "y"})
    assert err.value.details[0]["field"] == "name"


def _field(spec: Any) -> tuple[str, str]:
    with pytest.raises(ValidationFailed) as err:
        AnalysisTemplate.from_dict("t", spec)
    detail = err.value.details[0]
    assert err.value.message == f"{detail['field']}: {detail['reason']}"
    return detail["field"], detail["reason"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ([1, 2], "spec"),
        ({"checkz": {}}, "checkz"),
        ({"checks": []}, "checks"),
        ({"checks": {"latency": {}}}, "checks.latency"),
        ({"checks": {"error_rate": 0.5}}, "checks.error_rate"),
        ({"checks": {"error_rate": {"treshold": 0.5}}}, "checks.error_rate.treshold"),
        ({"checks": {"latency_p99": {"threshold": 0}}}, "checks.latency_p99.threshold"),
        ({"checks": {"latency_p99": {"threshold": -1}}}, "checks.latency_p99.threshold"),
        ({"checks": {"latency_p99": {"threshold": math.inf}}}, "checks.latency_p99.threshold"),
        ({"checks": {"output_shift": {"threshold": math.nan}}}, "checks.output_shift.threshold"),
        ({"checks": {"output_shift": {"threshold": "0.1"}}}, "checks.output_shift.threshold"),
        ({"checks": {"latency_p99": {"threshold": True}}}, "checks.latency_p99.threshold"),
        ({"checks": {"error_rate": {"threshold": 1.5}}}, "checks.error_rate.threshold"),
        ({"checks": {"error_rate": {"threshold": -0.01}}}, "checks.error_rate.threshold"),
        (
            {"checks": {"contract_violation_rate": {"threshold": 2}}},
            "checks.contract_violation_rate.threshold",
        ),
        ({"checks": {"agreement": {"threshold": 1.01}}}, "checks.agreement.threshold"),
        ({"checks": {"label_quality": {"threshold": 3}}}, "checks.label_quality.threshold"),
        ({"checks": {"error_rate": {"min_samples": 0}}}, "checks.error_rate.min_samples"),
        ({"checks": {"error_rate": {"min_samples": 1.5}}}, "checks.error_rate.min_samples"),
        ({"checks": {"error_rate": {"min_samples": 100.0}}}, "checks.error_rate.min_samples"),
        ({"checks": {"error_rate": {"min_samples": True}}}, "checks.error_rate.min_samples"),
        ({"checks": {"error_rate": {"min_samples": "100"}}}, "checks.error_rate.min_samples"),
        ({"checks": {"error_rate": {"min_samples": 10**12}}}, "checks.error_rate.min_samples"),
        ({"checks": {"agreement": {"critical": "yes"}}}, "checks.agreement.critical"),
        ({"checks": {"agreement": {"enabled": 1}}}, "checks.agreement.enabled"),
        ({"checks": {"latency_p99": {"slack": -1}}}, "checks.latency_p99.slack"),
        ({"checks": {"latency_p99": {"slack": math.inf}}}, "checks.latency_p99.slack"),
        ({"inconclusive_wait": -0.5}, "inconclusive_wait"),
        ({"inconclusive_wait": math.nan}, "inconclusive_wait"),
        ({"inconclusive_wait": "1"}, "inconclusive_wait"),
        ({"description": 3}, "description"),
        ({"description": "x" * 1001}, "description"),
    ],
)
def test_validation_names_the_dotted_field(spec: Any, field: str) -> None:
    assert _field(spec)[0] == field


def test_unknown_names_list_the_allowed_ones() -> None:
    assert _field({"checks": {"latency": {}}}) == (
        "checks.latency",
        "unknown check; allowed: error_rate, latency_p99, contract_violation_rate, "
        "output_shift, agreement, label_quality",
    )
    field, reason = _field({"checks": {"error_rate": {"treshold": 0.5}}})
    assert reason == "unknown field; allowed: threshold, min_samples, critical, enabled, slack"
    field, reason = _field({"wait": 1})
    assert (field, reason) == (
        "wait",
        "unknown field; allowed: name, description, inconclusive_wait, checks",
    )


def test_threshold_reasons() -> None:
    assert _field({"checks": {"latency_p99": {"threshold": 0}}})[1] == "must be a positive number"
    assert _field({"checks": {"agreement": {"threshold": 2}}})[1] == (
        "must be a number between 0 and 1"
    )


def test_edge_values_are_accepted() -> None:
    template = AnalysisTemplate.from_dict(
        "edges",
        {
            "inconclusive_wait": 0,
            "checks": {
                "error_rate": {"threshold": 0, "min_samples": 1},
                "agreement": {"threshold": 1},
                "label_quality": {"threshold": 0.0},
                "latency_p99": {"threshold": 0.5, "slack": 0},
            },
        },
    )
    assert template.inconclusive_wait == 0.0
    assert template.checks["error_rate"] == CheckSpec(0.0, 1)
    assert template.checks["agreement"].threshold == 1.0


def test_a_template_needs_every_check() -> None:
    with pytest.raises(ValueError, match="checks must be exactly"):
        AnalysisTemplate("partial", {"error_rate": CheckSpec(0.01, 100)})


# -- the service ---------------------------------------------------------------------------
def _events(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(audit_events)
                .where(audit_events.c.target_kind == "analysis_template")
                .order_by(audit_events.c.seq)
            )
        )


def test_service_round_trip(engine: Engine) -> None:
    service = TemplateService(engine)
    assert service.list() == [DEFAULT]
    assert service.get("default") is DEFAULT

    spec = {"description": "tolerant", "checks": {"latency_p99": {"threshold": 2}}}
    created = service.put("tolerant", spec, ALICE)
    assert created.checks["latency_p99"].threshold == 2.0
    assert service.get("tolerant") == created
    with engine.connect() as conn:
        row = conn.execute(select(analysis_templates)).one()
    assert row.name == "tolerant"
    assert row.created_by == "alice"
    assert row.spec == {k: v for k, v in created.to_dict().items() if k != "name"}

    replaced = service.put("tolerant", {"checks": {"agreement": {"enabled": False}}}, ALICE)
    # A put replaces the whole template: what it leaves out is the default again.
    assert replaced.checks["latency_p99"] == DEFAULT.checks["latency_p99"]
    assert replaced.checks["agreement"].enabled is False
    assert replaced.description == DEFAULT.description
    assert service.get("tolerant") == replaced

    service.put("alpha", {}, ALICE)
    assert [t.name for t in service.list()] == ["default", "alpha", "tolerant"]

    service.delete("tolerant", ALICE)
    with pytest.raises(NotFound):
        service.get("tolerant")
    assert [t.name for t in service.list()] == ["default", "alpha"]

    events = _events(engine)
    assert [e.action for e in events] == [
        "analysis_template.put",
        "analysis_template.put",
        "analysis_template.put",
        "analysis_template.delete",
    ]
    first, second, _, deleted = events
    assert first.target == "tolerant"
    assert first.actor == "alice"
    assert first.before is None
    assert first.after == created.to_dict()
    assert second.before == created.to_dict()
    assert second.after == replaced.to_dict()
    assert deleted.before == replaced.to_dict()
    assert deleted.after is None


def test_default_is_read_only_in_the_service(engine: Engine) -> None:
    service = TemplateService(engine)
    with pytest.raises(Conflict, match="cannot be changed; create one under another name"):
        service.put("default", {}, ALICE)
    with pytest.raises(Conflict):
        service.delete("default", ALICE)
    assert service.list() == [DEFAULT]
    assert _events(engine) == []


def test_service_rejects_bad_names_and_specs_storing_nothing(engine: Engine) -> None:
    service = TemplateService(engine)
    with pytest.raises(ValidationFailed) as err:
        service.put("Not A Slug", {}, ALICE)
    assert err.value.details[0]["field"] == "name"
    with pytest.raises(ValidationFailed) as err:
        service.put("ok", {"checks": {"latency_p99": {"threshold": -1}}}, ALICE)
    assert err.value.details[0]["field"] == "checks.latency_p99.threshold"
    with pytest.raises(NotFound):
        service.get("ok")
    with pytest.raises(NotFound):
        service.delete("ok", ALICE)
    assert _events(engine) == []

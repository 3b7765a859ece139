"""What each policy check decides, with a reason that names the numbers.

- ``metadata``: the model fields listed are non-empty, ``risk_tier`` is a known tier,
  ``contract`` and ``reference_profile`` are stored with the version.
- ``metric``: the version's evaluation record (``EvaluationService.current``) has the
  metric and it meets ``value`` ("auc 0.78 < 0.8"); with ``per_slice``, every slice of
  a record that has slices meets it too ("slice region=eu: auc 0.71 < 0.75"; a slice
  without the metric fails).
  ``relative_to: current`` compares with the endpoint's current primary plus ``delta``
  ("auc 0.84 < current 0.86 - 0.01 (version 3)"); with no current version (a first
  deploy) or a current version without that metric it passes with "no current version
  to compare".
- ``baseline``: each listed metric beats the simple baseline recorded beside it by
  ``margin``; a metric with no baseline recorded passes ("no baseline recorded").
- ``no_breaking_change``: the target's input contract refuses nothing the current
  primary's accepts, whatever ``allow_breaking`` the caller passed.
- ``artifact``: the flavor is an allowed format (``pyfunc`` is code: only with
  ``allow_code``) and the stored bytes still hash to the version's SHA-256.
- ``evaluation_age``: the evaluation is at most ``max_days`` old; a version registered
  with lineage metrics and no record counts from its registration.
- ``approvals``: enough distinct deciders who held the role (or admin) when deciding
  approved the version on its current evidence; a stale approval (the evidence changed
  since) does not count. How many depends on the model's risk tier; a tier the check
  leaves out needs none.

A version with no evaluation record fails every check that reads one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from slipway.contracts.diff import breaking, diff
from slipway.errors import ArtifactIntegrityError, NotFound
from slipway.governance.approvals import ApprovalService
from slipway.governance.evaluations import EvaluationRecord, EvaluationService
from slipway.governance.policy_spec import CODE_FLAVORS, MODEL_FIELDS, CheckSpec
from slipway.ids import utcnow
from slipway.registry.models import RISK_TIERS, Model
from slipway.registry.versions import Version, VersionService

__all__ = ["CheckResult", "Subject", "run_check"]

# Float noise (0.86 - 0.01 is 0.8500000000000001) must not decide a check.
_EPSILON = 1e-9


@dataclass(frozen=True)
class CheckResult:
    id: str
    type: str
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        status = "pass" if self.passed else "fail"
        return {"id": self.id, "type": self.type, "status": status, "reason": self.reason}


def _number(value: float) -> str:
    return f"{value:.6g}"


def _meets(value: float, op: str, threshold: float) -> bool:
    if op == ">=":
        return value >= threshold - _EPSILON * max(1.0, abs(threshold))
    return value <= threshold + _EPSILON * max(1.0, abs(threshold))


def _opposite(op: str) -> str:
    return "<" if op == ">=" else ">"


class Subject:
    """What the checks of one report look at, each read at most once."""

    def __init__(
        self,
        versions: VersionService,
        evaluations: EvaluationService,
        approvals: ApprovalService,
        *,
        endpoint: str,
        action: str,
        target: Version,
        current_version_id: str | None,
    ) -> None:
        self.versions = versions
        self.evaluations = evaluations
        self.approvals = approvals
        self.endpoint = endpoint
        self.action = action
        self.target = target
        self.current_version_id = current_version_id
        self.now = utcnow()

    @cached_property
    def model(self) -> Model:
        return self.versions.models.get(self.target.model)

    @cached_property
    def evaluation(self) -> EvaluationRecord | None:
        return self.evaluations.current(self.target)

    @cached_property
    def current(self) -> Version | None:
        if self.current_version_id is None:
            return None
        return self.versions.get_by_id(self.current_version_id)

    @cached_property
    def current_evaluation(self) -> EvaluationRecord | None:
        if self.current is None:
            return None
        if self.current.id == self.target.id:
            return self.evaluation
        return self.evaluations.current(self.current)

    def label(self, version: Version) -> str:
        """``version 3``, or ``churn version 3`` when the endpoint serves another model."""
        if version.model == self.target.model:
            return f"version {version.number}"
        return f"{version.model} version {version.number}"


Outcome = tuple[bool, str]


def _check_metadata(subject: Subject, options: Mapping[str, Any]) -> Outcome:
    model, version = subject.model, subject.target
    missing = []
    for name in options["require"]:
        if name in MODEL_FIELDS:
            present = bool(str(getattr(model, name) or "").strip())
        elif name == "risk_tier":
            present = model.risk_tier in RISK_TIERS
        elif name == "contract":
            present = version.contract is not None
        else:  # reference_profile
            present = version.profile is not None
        if not present:
            missing.append(name)
    if missing:
        return False, f"{', '.join(missing)} missing"
    return True, f"{', '.join(options['require'])} present"


def _check_metric(subject: Subject, options: Mapping[str, Any]) -> Outcome:
    metric, op = options["metric"], options["op"]
    evaluation = subject.evaluation
    if evaluation is None:
        return False, "no evaluation record"
    if metric not in evaluation.metrics:
        has = ", ".join(sorted(evaluation.metrics)) or "none"
        return False, f"{metric} not in the evaluation record (has: {has})"
    value = evaluation.metrics[metric]
    if options.get("relative_to") == "current":
        return _relative(subject, metric, op, value, options["delta"])
    threshold = options["value"]
    problems = []
    if not _meets(value, op, threshold):
        problems.append(f"{metric} {_number(value)} {_opposite(op)} {_number(threshold)}")
    checked_slices = 0
    if options.get("per_slice"):
        for name, metrics in sorted(evaluation.slices.items()):
            checked_slices += 1
            if metric not in metrics:
                problems.append(f"slice {name}: {metric} not recorded")
            elif not _meets(metrics[metric], op, threshold):
                problems.append(
                    f"slice {name}: {metric} {_number(metrics[metric])} {_opposite(op)} "
                    f"{_number(threshold)}"
                )
    if problems:
        return False, "; ".join(problems)
    also = f" (and in all {checked_slices} slices)" if checked_slices else ""
    return True, f"{metric} {_number(value)} {op} {_number(threshold)}{also}"


def _relative(subject: Subject, metric: str, op: str, value: float, delta: float) -> Outcome:
    current, evaluation = subject.current, subject.current_evaluation
    if current is None:
        return True, "no current version to compare"
    if evaluation is None or metric not in evaluation.metrics:
        return True, f"no current version to compare ({subject.label(current)} has no {metric})"
    reference = evaluation.metrics[metric]
    shift = "" if delta == 0 else f" {'-' if delta < 0 else '+'} {_number(abs(delta))}"
    bound = f"current {_number(reference)}{shift} ({subject.label(current)})"
    if _meets(value, op, reference + delta):
        return True, f"{metric} {_number(value)} {op} {bound}"
    return False, f"{metric} {_number(value)} {_opposite(op)} {bound}"


def _check_baseline(subject: Subject, options: Mapping[str, Any]) -> Outcome:
    evaluation = subject.evaluation
    if evaluation is None:
        return False, "no evaluation record"
    margin = options["margin"]
    problems, fine, unrecorded = [], [], []
    for metric, op in options["metrics"].items():
        if metric not in evaluation.metrics:
            problems.append(f"{metric} not in the evaluation record")
            continue
        if metric not in evaluation.baseline:
            unrecorded.append(metric)
            continue
        value, base = evaluation.metrics[metric], evaluation.baseline[metric]
        threshold = base + margin if op == ">=" else base - margin
        extra = f" {'+' if op == '>=' else '-'} {_number(margin)}" if margin else ""
        if _meets(value, op, threshold):
            fine.append(f"{metric} {_number(value)} {op} baseline {_number(base)}{extra}")
        else:
            problems.append(
                f"{metric} {_number(value)} {_opposite(op)} baseline {_number(base)}{extra}"
            )
    if problems:
        return False, "; ".join(problems)
    if not fine:
        return True, "no baseline recorded"
    if unrecorded:
        fine.append(f"no baseline recorded for {', '.join(unrecorded)}")
    return True, "; ".join(fine)


def _check_no_breaking_change(subject: Subject, options: Mapping[str, Any]) -> Outcome:
    current, target = subject.current, subject.target
    if current is None:
        return True, "no current version to compare"
    if current.id == target.id:
        return True, "the endpoint already serves this version"
    changes = breaking(diff(current.data_contract, target.data_contract))
    if not changes:
        return True, f"no breaking contract change against {subject.label(current)}"
    listed = "; ".join(f"{c.field or 'outputs'}: {c.what}" for c in changes)
    return False, (
        f"{len(changes)} breaking contract change(s) against {subject.label(current)}: {listed}"
    )


def _check_artifact(subject: Subject, options: Mapping[str, Any]) -> Outcome:
    version = subject.target
    problems = []
    if version.flavor in CODE_FLAVORS and not options["allow_code"]:
        problems.append(f"flavor {version.flavor} is Python code, refused unless allow_code: true")
    elif version.flavor not in options["formats"]:
        allowed = ", ".join(options["formats"])
        problems.append(f"flavor {version.flavor} is not an allowed format ({allowed})")
    try:
        subject.versions.artifacts.read_verified(version.artifact_sha256, version.artifact_size)
    except ArtifactIntegrityError as exc:
        problems.append(exc.message)
    except NotFound:
        problems.append(f"artifact {version.artifact_sha256} is missing from the store")
    if problems:
        return False, "; ".join(problems)
    return True, f"{version.flavor} artifact, sha256 {version.artifact_sha256[:12]} verified"


def _check_evaluation_age(subject: Subject, options: Mapping[str, Any]) -> Outcome:
    evaluation = subject.evaluation
    if evaluation is None or evaluation.evaluated_at is None:
        return False, "no evaluation record"
    age, limit = evaluation.age_days(subject.now), options["max_days"]
    derived = " (lineage metrics, dated by registration)" if evaluation.derived else ""
    reason = f"evaluation is {age:.1f} days old (max {_number(limit)}){derived}"
    return age <= limit, reason


def _check_approvals(subject: Subject, options: Mapping[str, Any]) -> Outcome:
    tier = subject.model.risk_tier
    rule = options["by_risk_tier"].get(tier)
    if rule is None or rule["count"] == 0:
        return True, f"risk tier {tier} needs no approval"
    count, role = rule["count"], rule["role"]
    valid: list[str] = []
    other_role: list[str] = []
    stale: list[str] = []
    pending = 0
    for approval, changed in subject.approvals.standing(subject.target):
        if approval.state == "pending":
            pending += 1
        if approval.state != "approved" or approval.decided_by is None:
            continue
        who = approval.decided_by
        if changed:
            stale.append(f"{who} — {', '.join(changed)} changed")
        elif role in (approval.decider_roles or []) or "admin" in (approval.decider_roles or []):
            if who not in valid:
                valid.append(who)
        else:
            other_role.append(who)
    parts = [f"valid: {', '.join(valid)}" if valid else "no valid approval"]
    if stale:
        parts.append(f"stale: {'; '.join(stale)}")
    if other_role:
        parts.append(f"without role {role}: {', '.join(other_role)}")
    if pending:
        parts.append(f"{pending} request(s) pending")
    reason = f"{min(len(valid), count)} of {count} approvals by role {role} ({'; '.join(parts)})"
    return len(valid) >= count, f"risk tier {tier}: {reason}"


_CHECKS: dict[str, Callable[[Subject, Mapping[str, Any]], Outcome]] = {
    "metadata": _check_metadata,
    "metric": _check_metric,
    "baseline": _check_baseline,
    "no_breaking_change": _check_no_breaking_change,
    "artifact": _check_artifact,
    "evaluation_age": _check_evaluation_age,
    "approvals": _check_approvals,
}


def run_check(subject: Subject, check: CheckSpec) -> CheckResult:
    passed, reason = _CHECKS[check.type](subject, check.options)
    return CheckResult(check.id, check.type, passed, reason)

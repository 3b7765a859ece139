"""The evidence behind the ML Test Score's automatic points, read from slipway's records.

What is scored: the model *as served*. Endpoint-level tests (monitors, canaries,
rollback) hold only when they hold on every endpoint serving the model (its primary
versions): one unmonitored endpoint is production traffic nobody watches. Version-level
tests (approvals, evaluation, lineage, smoke test) look at the scored version: the
newest version that is some endpoint's primary, else the newest ready version, else
the newest version. A model serving nowhere gets no endpoint-level points.

Automatic rules (each says what proved it):

    data-1    every serving primary has a stored data contract (checked on every request)
    model-1   the scored version has a valid approval (approved, bound to its evidence)
    model-2   each endpoint has an enabled label-quality monitor on a metric that is also
              in the offline evaluation record, and labels (feedback) have arrived
    model-5   the evaluation record has a baseline and the model is not worse on any
              shared metric (lower is better for :data:`LOWER_IS_BETTER`)
    model-6   the record has slices and a policy applying to each endpoint holds a
              metric check with ``per_slice: true``
    infra-1   lineage has a clean code commit, a training data fingerprint, parameters
    infra-2   the version is ready: it passed the smoke test on its example rows
    infra-4   a policy applying to each endpoint holds a metric or baseline check
    infra-5   the model serves: every prediction is recorded with inputs and outputs
    infra-6   each endpoint's primary came in through a promoted rollout whose canary
              took traffic (it opened at least its first step)
    infra-7   each endpoint has a previous version to roll back to
    monitor-2 an enabled contract-violation monitor on each endpoint
    monitor-3 an enabled drift monitor on each endpoint, whose primary has a reference
    monitor-4 an enabled model-age monitor on each endpoint
    monitor-5 an enabled NaN/inf output monitor on each endpoint
    monitor-6 an enabled latency monitor on each endpoint
    monitor-7 an enabled label-quality monitor on each endpoint, with labels arriving

Policies count for an endpoint when they gate a deploy or a promotion there
(``PolicySpec.applies``): a policy in force today gates the next deploy, which is what
"validated before serving" asks of a process. The rules are pure functions
of :class:`Evidence`; gathering it from the store is ``TestScoreService.evidence``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slipway.governance.evaluations import EvaluationRecord
from slipway.governance.policy_spec import CheckSpec, PolicySpec
from slipway.monitoring.monitors import METRICS, Monitor
from slipway.registry.versions import Version
from slipway.serving.endpoints import Endpoint

# Offline metrics where a smaller value is better (model-5 compares against the
# baseline with these reversed); every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset(
    {"mae", "mse", "rmse", "mape", "log_loss", "brier", "ece", "calibration_error"}
)
# Monitor metric names that an evaluation record spells differently.
_OFFLINE_NAME = {"calibration_error": "ece"}

# -- what the records hold ------------------------------------------------------------------


@dataclass(frozen=True)
class Serving:
    """One endpoint serving the model: its primary version and what guards it."""

    endpoint: Endpoint
    primary: Version
    monitors: tuple[Monitor, ...]  # the enabled ones
    has_labels: bool
    policies: tuple[PolicySpec, ...]  # the ones checking what this endpoint serves
    canaried: bool  # the primary arrived through a promoted rollout that took traffic

    @property
    def name(self) -> str:
        return self.endpoint.name


@dataclass(frozen=True)
class Evidence:
    model: str
    version: Version | None
    evaluation: EvaluationRecord | None
    valid_approvals: tuple[str, ...]  # who decided the approvals that still count
    serving: tuple[Serving, ...] = field(default_factory=tuple)


def _is_slice_check(check: CheckSpec) -> bool:
    return check.type == "metric" and check.options.get("per_slice") is True


def _is_quality_check(check: CheckSpec) -> bool:
    return check.type in ("metric", "baseline")


def _has_check(policy: PolicySpec, accept: Callable[[CheckSpec], bool]) -> bool:
    return any(accept(c) for c in policy.checks)


def _monitor(s: Serving, accept: Callable[[Monitor], bool]) -> Monitor | None:
    return next((m for m in s.monitors if accept(m)), None)


def _source(metric: str) -> str:
    known = METRICS.get(metric)
    return known.source if known is not None else ""


def _on_every_endpoint(
    e: Evidence, holds: Callable[[Serving], str | None], what: str
) -> str | None:
    """``what`` plus each endpoint's reason, when ``holds`` gives one for every serving
    endpoint (and there is at least one); else None."""
    if not e.serving:
        return None
    reasons = []
    for s in e.serving:
        reason = holds(s)
        if reason is None:
            return None
        reasons.append(f"{s.name}: {reason}")
    return f"{what} ({'; '.join(reasons)})"


def _monitor_rule(accept: Callable[[Monitor], bool], what: str) -> Callable[[Evidence], Any]:
    def rule(e: Evidence) -> str | None:
        def holds(s: Serving) -> str | None:
            m = _monitor(s, accept)
            return f"monitor {m.name} ({m.metric} {m.op} {m.threshold:g})" if m else None

        return _on_every_endpoint(e, holds, what)

    return rule


def _data_1(e: Evidence) -> str | None:
    def holds(s: Serving) -> str | None:
        if s.primary.contract is None:
            return None
        return f"v{s.primary.number} has a stored contract, mode {s.endpoint.contract_mode}"

    return _on_every_endpoint(e, holds, "data contract enforced on every request")


def _model_1(e: Evidence) -> str | None:
    if e.version is None or not e.valid_approvals:
        return None
    return f"v{e.version.number} approved by {', '.join(e.valid_approvals)} (still valid)"


def _model_2(e: Evidence) -> str | None:
    offline = set(e.evaluation.metrics) if e.evaluation is not None else set()

    def online_offline(m: Monitor) -> bool:
        return _source(m.metric) == "labels" and (
            m.metric in offline or _OFFLINE_NAME.get(m.metric) in offline
        )

    def holds(s: Serving) -> str | None:
        m = _monitor(s, online_offline)
        if m is None or not s.has_labels:
            return None
        return f"monitor {m.name} judges live {m.metric} against labels"

    return _on_every_endpoint(e, holds, "offline metric monitored online")


def _model_5(e: Evidence) -> str | None:
    ev = e.evaluation
    if ev is None or not ev.baseline:
        return None
    shared = sorted(set(ev.metrics) & set(ev.baseline))
    if not shared:
        return None
    for name in shared:
        lower = name in LOWER_IS_BETTER
        if (
            (ev.metrics[name] > ev.baseline[name])
            if lower
            else (ev.metrics[name] < ev.baseline[name])
        ):
            return None
    pairs = ", ".join(f"{n} {ev.metrics[n]:g} vs {ev.baseline[n]:g}" for n in shared)
    return f"not worse than the baseline on {pairs}"


def _model_6(e: Evidence) -> str | None:
    if e.evaluation is None or not e.evaluation.slices:
        return None

    def holds(s: Serving) -> str | None:
        found = [p.name for p in s.policies if _has_check(p, _is_slice_check)]
        return f"policy {', '.join(found)}" if found else None

    count = len(e.evaluation.slices)
    return _on_every_endpoint(e, holds, f"{count} slice(s) gated by a per-slice metric check")


def _infra_1(e: Evidence) -> str | None:
    lineage = e.version.lineage if e.version is not None else {}
    code = lineage.get("code") if isinstance(lineage, Mapping) else None
    if (
        not isinstance(code, Mapping)
        or code.get("dirty") is not False
        or not isinstance(lineage.get("training_data"), Mapping)
        or not isinstance(lineage.get("parameters"), Mapping)
    ):
        return None
    commit = str(code.get("git_commit", ""))[:12]
    data = str(lineage["training_data"].get("sha256", ""))[:12]
    return f"clean commit {commit}, training data {data}, parameters recorded"


def _infra_2(e: Evidence) -> str | None:
    if e.version is None or e.version.status != "ready":
        return None
    rows = len(e.version.example_rows)
    return f"v{e.version.number} passed its smoke test on {rows} example row(s) in a sandbox"


def _infra_4(e: Evidence) -> str | None:
    def holds(s: Serving) -> str | None:
        found = [p.name for p in s.policies if _has_check(p, _is_quality_check)]
        return f"policy {', '.join(found)}" if found else None

    return _on_every_endpoint(e, holds, "a policy checks quality before serving")


def _infra_5(e: Evidence) -> str | None:
    names = ", ".join(s.name for s in e.serving)
    return f"every prediction on {names} is recorded with inputs and outputs" if names else None


def _infra_6(e: Evidence) -> str | None:
    def holds(s: Serving) -> str | None:
        return f"v{s.primary.number} promoted by a rollout" if s.canaried else None

    return _on_every_endpoint(e, holds, "canaried before serving")


def _infra_7(e: Evidence) -> str | None:
    def holds(s: Serving) -> str | None:
        previous = s.endpoint.previous_version
        return f"previous version v{previous}" if previous is not None else None

    return _on_every_endpoint(e, holds, "rollback available")


def _monitor_3(e: Evidence) -> str | None:
    def holds(s: Serving) -> str | None:
        m = _monitor(s, lambda m: _source(m.metric) == "drift")
        if m is None or s.primary.profile is None:
            return None
        return f"monitor {m.name} against v{s.primary.number}'s reference profile"

    return _on_every_endpoint(e, holds, "skew watched")


def _monitor_7(e: Evidence) -> str | None:
    def holds(s: Serving) -> str | None:
        m = _monitor(s, lambda m: _source(m.metric) == "labels")
        if m is None or not s.has_labels:
            return None
        return f"monitor {m.name} ({m.metric}) with labels arriving"

    return _on_every_endpoint(e, holds, "prediction quality watched")


RULES: dict[str, Callable[[Evidence], str | None]] = {
    "data-1": _data_1,
    "model-1": _model_1,
    "model-2": _model_2,
    "model-5": _model_5,
    "model-6": _model_6,
    "infra-1": _infra_1,
    "infra-2": _infra_2,
    "infra-4": _infra_4,
    "infra-5": _infra_5,
    "infra-6": _infra_6,
    "infra-7": _infra_7,
    "monitor-2": _monitor_rule(lambda m: m.metric == "violation_rate", "contract violations"),
    "monitor-3": _monitor_3,
    "monitor-4": _monitor_rule(lambda m: _source(m.metric) == "age", "model age"),
    "monitor-5": _monitor_rule(lambda m: m.metric == "nan_rate", "NaN/inf outputs"),
    "monitor-6": _monitor_rule(lambda m: m.metric.startswith("latency_"), "latency"),
    "monitor-7": _monitor_7,
}


def automatic(e: Evidence) -> dict[str, str]:
    """The tests slipway's records prove, each with what proved it."""
    out = {}
    for test, rule in RULES.items():
        proof = rule(e)
        if proof is not None:
            out[test] = proof
    return out

"""Canary analysis: the canary against the primary over the same window, check by check.

Every check compares the two arms, never the canary against a fixed bar: a model whose
primary already errs 2% of the time is not failed for erring 2.5%. The caller picks the
windows (the same time range for both arms); nothing here reads a store::

    result = analyze(template, Arm(4, canary_window), Arm(3, primary_window), classifier=True)
    result.verdict  # "fail" | "pass" | "inconclusive"

A check with fewer than ``min_samples`` on either arm is ``inconclusive``, not passed:
a canary at 1% of traffic has seen too little to be judged, and the controller waits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

from slipway.errors import ValidationFailed
from slipway.monitoring.drift import DriftThresholds, column_drift, json_float
from slipway.monitoring.feedback import Labeled, quality_of
from slipway.monitoring.windows import Window
from slipway.rollout.templates import AnalysisTemplate, CheckSpec

__all__ = ["Analysis", "Arm", "CheckResult", "Status", "analyze"]

Status = Literal["pass", "fail", "inconclusive", "skipped"]


@dataclass(frozen=True)
class Arm:
    """One side of the comparison: a version and what it served in the window."""

    version: int
    window: Window
    labeled: Sequence[Labeled] = ()


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    critical: bool
    canary: float | None  # the canary's figure (rate, p99 ms, accuracy/MAE, share...)
    primary: float | None  # the primary's figure (None where not meaningful)
    value: float | None  # what is compared with the threshold
    threshold: float
    samples: int  # the smaller arm's sample count relevant to the check
    min_samples: int
    reason: str  # one human sentence

    def to_dict(self) -> dict[str, Any]:
        # JSON has no NaN or infinity (a ratio over a zero p99 is +inf): null instead.
        return {k: json_float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Analysis:
    checks: tuple[CheckResult, ...]

    @property
    def verdict(self) -> Literal["fail", "pass", "inconclusive"]:
        """fail: a critical check failed; pass: every critical check passed or was
        skipped; otherwise inconclusive. Non-critical checks never decide."""
        if self.failed():
            return "fail"
        if self.inconclusive():
            return "inconclusive"
        return "pass"

    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.critical and c.status == "fail"]

    def inconclusive(self) -> list[CheckResult]:
        return [c for c in self.checks if c.critical and c.status == "inconclusive"]

    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.critical and c.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "checks": [c.to_dict() for c in self.checks]}


def analyze(template: AnalysisTemplate, canary: Arm, primary: Arm, *, classifier: bool) -> Analysis:
    """Run the template's enabled checks, in ``CHECKS`` order; disabled ones are left out."""
    results = []
    for name, spec in template.checks.items():
        if spec.enabled:
            results.append(_CHECKS[name](_Check(name, spec), canary, primary, classifier))
    return Analysis(tuple(results))


class _Figures(NamedTuple):
    canary: float | None
    primary: float | None
    value: float | None
    samples: int


@dataclass(frozen=True)
class _Check:
    """A check being judged: builds its result with the spec's fields filled in."""

    name: str
    spec: CheckSpec

    def result(
        self,
        status: Status,
        reason: str,
        figures: _Figures | None = None,
    ) -> CheckResult:
        figures = figures or _Figures(None, None, None, 0)
        return CheckResult(
            name=self.name,
            status=status,
            critical=self.spec.critical,
            canary=figures.canary,
            primary=figures.primary,
            value=figures.value,
            threshold=self.spec.threshold,
            samples=figures.samples,
            min_samples=self.spec.min_samples,
            reason=reason,
        )

    def too_few(self, canary_n: int, primary_n: int, what: str) -> str | None:
        """The inconclusive reason when either arm has fewer than min_samples."""
        need = self.spec.min_samples
        if canary_n >= need and primary_n >= need:
            return None
        return (
            f"too few {what} to judge: {canary_n:,} on the canary and {primary_n:,} on the "
            f"primary, {need:,} needed on each"
        )


def _error_rate(check: _Check, canary: Arm, primary: Arm, classifier: bool) -> CheckResult:
    return _rate_increase(
        check, canary, primary, "errors", "requests", "error rate", lambda w: w.requests
    )


def _contract_violation_rate(
    check: _Check, canary: Arm, primary: Arm, classifier: bool
) -> CheckResult:
    return _rate_increase(
        check,
        canary,
        primary,
        "violations",
        "offered rows",
        "contract violation rate",
        lambda w: w.rows + w.violations,
    )


def _rate_increase(
    check: _Check,
    canary: Arm,
    primary: Arm,
    rate: str,
    unit: str,
    label: str,
    count: Callable[[Window], int],
) -> CheckResult:
    """canary rate - primary rate, in absolute terms, against threshold + slack."""
    c_n, p_n = count(canary.window), count(primary.window)
    c_rate, p_rate = canary.window.rate(rate), primary.window.rate(rate)
    value = c_rate - p_rate if c_rate is not None and p_rate is not None else None
    figures = _Figures(c_rate, p_rate, value, min(c_n, p_n))
    short = check.too_few(c_n, p_n, unit)
    if short or c_rate is None or p_rate is None or value is None:
        return check.result("inconclusive", short or f"no {unit} on an arm", figures)
    allowed = check.spec.threshold + check.spec.slack
    reason = (
        f"{label} {_pct(c_rate)} on the canary vs {_pct(p_rate)} on the primary: "
        f"{value * 100:+.1f} points"
    )
    if value <= allowed:
        return check.result("pass", f"{reason}, within the allowed {allowed * 100:+.1f}", figures)
    # Judged again every few seconds: an excess must also be unlikely to be chance (a 1%
    # error rate shows 2 errors in 100 requests often enough), or the controller would
    # roll back healthy canaries. Until it is, more data decides.
    z = _excess_z(c_rate, c_n, p_rate, p_n, allowed)
    if z < Z_ONE_SIDED_1PCT:
        return check.result(
            "inconclusive",
            f"{reason}, above the allowed {allowed * 100:+.1f} but not yet beyond chance "
            f"(z = {z:.2f} < {Z_ONE_SIDED_1PCT})",
            figures,
        )
    return check.result("fail", f"{reason}, more than the allowed {allowed * 100:+.1f}", figures)


# One-sided 1% critical value of the standard normal.
Z_ONE_SIDED_1PCT = 2.33


def _excess_z(c_rate: float, c_n: int, p_rate: float, p_n: int, allowed: float) -> float:
    """z statistic of "canary rate - primary rate > allowed" (Wald, unpooled)."""
    se = math.sqrt(c_rate * (1 - c_rate) / c_n + p_rate * (1 - p_rate) / p_n)
    excess = c_rate - p_rate - allowed
    return math.inf if se == 0 else excess / se


# A tail quantile is only judged from at least this many requests above it: the p99 of
# 200 requests is their second-slowest, and a couple of stalls that hit both arms (a
# restart, a GC pause) would decide it on the smaller arm alone.
TAIL_SAMPLES = 5


def tail_quantile(n: int) -> float:
    """p99, or the highest quantile ``n`` requests estimate from TAIL_SAMPLES above it."""
    return max(0.5, min(0.99, 1 - TAIL_SAMPLES / n)) if n else 0.99


def _latency_p99(check: _Check, canary: Arm, primary: Arm, classifier: bool) -> CheckResult:
    # Timed requests, not all requests: the quantile is read from the latency sketch,
    # the same one on both arms.
    c_n, p_n = canary.window.latency.count, primary.window.latency.count
    q = tail_quantile(min(c_n, p_n))
    c_p99, p_p99 = canary.window.latency_ms(q), primary.window.latency_ms(q)
    ratio: float | None = None
    if c_p99 is not None and p_p99 is not None:
        if p_p99 > 0:
            ratio = c_p99 / p_p99
        else:  # a zero baseline: any canary latency is infinitely slower, none is equal
            ratio = math.inf if c_p99 > 0 else 1.0
    figures = _Figures(c_p99, p_p99, ratio, min(c_n, p_n))
    short = check.too_few(c_n, p_n, "timed requests")
    if short or c_p99 is None or p_p99 is None:
        return check.result("inconclusive", short or "no timed requests on an arm", figures)
    t, slack = check.spec.threshold, check.spec.slack
    limit = t * p_p99 + slack
    failed = c_p99 > limit
    shown = "∞" if ratio is None or math.isinf(ratio) else f"{ratio:.2f}"
    label = f"p{q * 100:g}"
    reason = (
        f"{label} latency {c_p99:.1f} ms on the canary vs {p_p99:.1f} ms on the primary "
        f"({shown}×): {'more than' if failed else 'within'} the allowed {limit:.1f} ms "
        f"({t:g}× the primary + {slack:g} ms)"
    )
    return check.result("fail" if failed else "pass", reason, figures)


def _output_shift(check: _Check, canary: Arm, primary: Arm, classifier: bool) -> CheckResult:
    ref, cur = primary.window.profile.prediction, canary.window.profile.prediction
    if ref is None or cur is None:
        arm = "primary" if ref is None else "canary"
        return check.result("skipped", f"no predictions recorded on the {arm}")
    t, need = check.spec.threshold, check.spec.min_samples
    thresholds = DriftThresholds(
        numeric_wasserstein=t, categorical_js=t, min_samples=need, min_reference=need
    )
    try:
        drift = column_drift("prediction", ref, cur, thresholds, role="prediction")
    except ValidationFailed as exc:
        # Categorical on one arm, numeric on the other: not comparable, and not a
        # reason to roll back on its own either; a person has to look.
        return check.result("inconclusive", f"predictions are not comparable: {exc.message}")
    figures = _Figures(None, None, drift.score, min(drift.n_reference, drift.n_current))
    short = check.too_few(drift.n_current, drift.n_reference, "predicted rows")
    if short or drift.verdict == "insufficient" or drift.score is None:
        return check.result("inconclusive", short or "no comparable predictions", figures)
    # As the drift module judges: a score at the threshold is a shift.
    allowed = t + check.spec.slack
    failed = drift.score >= allowed
    if drift.statistic == "js_distance":
        moved = f"Jensen-Shannon distance {drift.score:.3f}"
    else:
        moved = f"{drift.score:.3f} primary standard deviations (Wasserstein-1)"
    reason = (
        f"canary predictions moved from the primary's by {moved}: "
        f"{'at or above' if failed else 'below'} the allowed {allowed:g}"
    )
    return check.result("fail" if failed else "pass", reason, figures)


def _agreement(check: _Check, canary: Arm, primary: Arm, classifier: bool) -> CheckResult:
    if not classifier:
        return check.result("skipped", "not a classifier")
    # The primary answers a copy of the canary's rows; the count is the canary's.
    compared, share = canary.window.agreement_with(primary.version)
    figures = _Figures(share, None, share, compared)
    need = check.spec.min_samples
    if compared < need or share is None:
        reason = f"too few compared rows to judge: {compared:,} of {need:,} needed"
        return check.result("inconclusive", reason, figures)
    required = check.spec.threshold - check.spec.slack
    failed = share < required
    reason = (
        f"the canary gave the primary's class on {_pct(share)} of {compared:,} compared "
        f"rows: {'less than' if failed else 'at least'} the required {_pct(required)}"
    )
    return check.result("fail" if failed else "pass", reason, figures)


def _label_quality(check: _Check, canary: Arm, primary: Arm, classifier: bool) -> CheckResult:
    c_n, p_n = len(canary.labeled), len(primary.labeled)
    if not c_n and not p_n:
        return check.result("skipped", "no labels yet")
    short = check.too_few(c_n, p_n, "labels")
    if short:
        return check.result("inconclusive", short, _Figures(None, None, None, min(c_n, p_n)))
    metric = "accuracy" if classifier else "mae"
    try:
        c_q = quality_of(canary.labeled, classifier=classifier)[metric]
        p_q = quality_of(primary.labeled, classifier=classifier)[metric]
    except (ValueError, TypeError, ValidationFailed) as exc:
        # e.g. a class name given as the label of a regressor's prediction
        text = exc.message if isinstance(exc, ValidationFailed) else str(exc)
        reason = f"labels could not be scored: {text}"
        return check.result("inconclusive", reason, _Figures(None, None, None, min(c_n, p_n)))
    if c_q is None or p_q is None:
        reason = f"{metric} could not be computed on an arm"
        return check.result("inconclusive", reason, _Figures(c_q, p_q, None, min(c_n, p_n)))
    allowed = check.spec.threshold + check.spec.slack
    if classifier:
        value = p_q - c_q  # the drop in accuracy
        failed = value > allowed
        reason = (
            f"accuracy {_pct(c_q)} on the canary vs {_pct(p_q)} on the primary "
            f"({c_n:,} and {p_n:,} labels): down {value * 100:.1f} points, "
            f"{'more than' if failed else 'within'} the allowed {allowed * 100:.1f}"
        )
    else:
        if p_q > 0:
            value = c_q / p_q - 1  # the relative increase in MAE
        else:  # a perfect primary: any error is infinitely worse
            value = math.inf if c_q > 0 else 0.0
        failed = value > allowed
        shown = "+∞" if math.isinf(value) else f"{value * 100:+.1f}%"
        reason = (
            f"MAE {c_q:.4g} on the canary vs {p_q:.4g} on the primary "
            f"({c_n:,} and {p_n:,} labels): {shown}, "
            f"{'more than' if failed else 'within'} the allowed {allowed * 100:+.1f}%"
        )
    return check.result(
        "fail" if failed else "pass", reason, _Figures(c_q, p_q, value, min(c_n, p_n))
    )


_CHECKS: dict[str, Callable[[_Check, Arm, Arm, bool], CheckResult]] = {
    "error_rate": _error_rate,
    "latency_p99": _latency_p99,
    "contract_violation_rate": _contract_violation_rate,
    "output_shift": _output_shift,
    "agreement": _agreement,
    "label_quality": _label_quality,
}


def _pct(share: float) -> str:
    """0.2 -> "20.0%"; tiny non-zero shares keep two significant digits (0.05%)."""
    percent = share * 100
    if percent == 0 or abs(percent) >= 0.1:
        return f"{percent:.1f}%"
    return f"{percent:.2g}%"

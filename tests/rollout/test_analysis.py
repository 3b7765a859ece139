"""Canary analysis on real windows: data fed through the real sketches, judged per check,
and the verdict the controller acts on."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from slipway.monitoring.feedback import Labeled
from slipway.monitoring.profile import Profile
from slipway.monitoring.windows import Window
from slipway.rollout.analysis import Analysis, Arm, CheckResult, analyze
from slipway.rollout.templates import CHECKS, DEFAULT, AnalysisTemplate

PRIMARY, CANARY = 3, 4
T0 = datetime(2024, 6, 1, tzinfo=UTC)


def window(
    n: int = 1000,
    *,
    positive: float = 0.3,
    predictions: np.ndarray | None = None,
    kind: str | None = "categorical",
    latency_ms: float | np.ndarray = 10.0,
    errors: int = 0,
    violations: int = 0,
    seed: int = 0,
) -> Window:
    """``n`` requests of one row each: binary classes with ``positive`` share of 1s (or
    the given predictions), latencies spread ±10% around ``latency_ms``."""
    rng = np.random.default_rng(seed)
    w = Window(Profile.empty({}, prediction=kind))
    if kind is not None:
        if predictions is None:
            predictions = np.where(np.arange(n) < round(positive * n), "1", "0")
        w.profile.update({}, predictions=predictions)
    if isinstance(latency_ms, np.ndarray):
        w.latency.update(latency_ms)
    else:
        w.latency.update(latency_ms * rng.uniform(0.9, 1.1, n))
    w.requests, w.rows, w.errors, w.violations = n, n, errors, violations
    return w


def labels(n: int, correct: int, *, classes: bool = True) -> list[Labeled]:
    """``n`` labeled predictions, the first ``correct`` of them right."""
    out = []
    for i in range(n):
        if classes:
            label, predicted = "1", ("1" if i < correct else "0")
            out.append(Labeled(label, predicted, None, ["0", "1"], T0, T0))
        else:
            label_f = float(i % 10)
            out.append(
                Labeled(label_f, label_f + (0.0 if i < correct else 1.0), None, None, T0, T0)
            )
    return out


def run(
    canary: Window,
    primary: Window,
    *,
    classifier: bool = True,
    template: AnalysisTemplate = DEFAULT,
    canary_labels: list[Labeled] | None = None,
    primary_labels: list[Labeled] | None = None,
) -> Analysis:
    return analyze(
        template,
        Arm(CANARY, canary, canary_labels or []),
        Arm(PRIMARY, primary, primary_labels or []),
        classifier=classifier,
    )


def check(analysis: Analysis, name: str) -> CheckResult:
    (result,) = [c for c in analysis.checks if c.name == name]
    return result


def only(name: str, **spec: Any) -> AnalysisTemplate:
    """DEFAULT with every other check disabled."""
    checks: dict[str, Any] = {c: {"enabled": False} for c in CHECKS if c != name}
    checks[name] = spec
    return DEFAULT.with_overrides({"checks": checks})


def serializable(analysis: Analysis) -> dict[str, Any]:
    data = analysis.to_dict()
    return json.loads(json.dumps(data, allow_nan=False))  # type: ignore[no-any-return]


# -- the whole analysis --------------------------------------------------------------------
def test_identical_arms_pass_everything() -> None:
    canary, primary = window(), window()
    canary.agreement = {PRIMARY: [1000, 1000]}
    analysis = run(canary, primary, canary_labels=labels(200, 190), primary_labels=labels(200, 190))
    assert [c.name for c in analysis.checks] == list(CHECKS)
    assert {c.name: c.status for c in analysis.checks} == dict.fromkeys(CHECKS, "pass")
    assert analysis.verdict == "pass"
    assert analysis.failed() == analysis.inconclusive() == analysis.warnings() == []
    data = serializable(analysis)
    assert data["verdict"] == "pass"
    assert len(data["checks"]) == len(CHECKS)


def test_bad_canary_fails_several_checks() -> None:
    canary = window(positive=0.7, latency_ms=30.0, errors=200, seed=1)
    canary.agreement = {PRIMARY: [1000, 30]}
    analysis = run(canary, window())
    statuses = {c.name: c.status for c in analysis.checks}
    assert statuses == {
        "error_rate": "fail",
        "latency_p99": "fail",
        "contract_violation_rate": "pass",
        "output_shift": "fail",
        "agreement": "fail",
        "label_quality": "skipped",
    }
    assert analysis.verdict == "fail"
    assert [c.name for c in analysis.failed()] == [
        "error_rate",
        "latency_p99",
        "output_shift",
        "agreement",
    ]
    serializable(analysis)


def test_disabled_checks_are_left_out() -> None:
    template = DEFAULT.with_overrides(
        {"checks": {"agreement": {"enabled": False}, "label_quality": {"enabled": False}}}
    )
    analysis = run(window(), window(), template=template)
    assert [c.name for c in analysis.checks] == [
        "error_rate",
        "latency_p99",
        "contract_violation_rate",
        "output_shift",
    ]


# -- verdicts ------------------------------------------------------------------------------
def result(name: str, status: Any, *, critical: bool = True) -> CheckResult:
    return CheckResult(name, status, critical, None, None, None, 0.1, 0, 1, "")


@pytest.mark.parametrize(
    ("checks", "verdict"),
    [
        ([("a", "pass", True), ("b", "pass", True)], "pass"),
        ([("a", "pass", True), ("b", "skipped", True)], "pass"),
        ([("a", "pass", True), ("b", "fail", False)], "pass"),
        ([("a", "pass", True), ("b", "inconclusive", False)], "pass"),
        ([("a", "pass", True), ("b", "inconclusive", True)], "inconclusive"),
        ([("a", "fail", True), ("b", "inconclusive", True)], "fail"),
        ([("a", "fail", True), ("b", "pass", True)], "fail"),
        ([("a", "skipped", True)], "pass"),
        ([], "pass"),
    ],
)
def test_verdict(checks: list[tuple[str, str, bool]], verdict: str) -> None:
    analysis = Analysis(tuple(result(n, s, critical=c) for n, s, c in checks))
    assert analysis.verdict == verdict


def test_failed_inconclusive_and_warnings() -> None:
    analysis = Analysis(
        (
            result("a", "fail"),
            result("b", "fail", critical=False),
            result("c", "inconclusive"),
            result("d", "inconclusive", critical=False),
            result("e", "pass"),
        )
    )
    assert [c.name for c in analysis.failed()] == ["a"]
    assert [c.name for c in analysis.warnings()] == ["b"]
    assert [c.name for c in analysis.inconclusive()] == ["c"]


def test_a_non_critical_failure_is_a_warning() -> None:
    template = only("error_rate", critical=False)
    analysis = run(window(errors=200), window(), template=template)
    assert check(analysis, "error_rate").status == "fail"
    assert analysis.verdict == "pass"
    assert [c.name for c in analysis.warnings()] == ["error_rate"]
    critical = run(window(errors=200), window(), template=only("error_rate"))
    assert critical.verdict == "fail"


# -- error rate ----------------------------------------------------------------------------
def test_error_rate() -> None:
    template = only("error_rate")
    ok = check(run(window(errors=5), window(errors=4), template=template), "error_rate")
    assert ok.status == "pass"
    assert ok.canary == pytest.approx(0.005)
    assert ok.primary == pytest.approx(0.004)
    assert ok.value == pytest.approx(0.001)
    assert ok.samples == 1000

    bad = check(run(window(errors=200), window(), template=template), "error_rate")
    assert bad.status == "fail"
    assert bad.value == pytest.approx(0.2)
    assert bad.reason == (
        "error rate 20.0% on the canary vs 0.0% on the primary: +20.0 points, "
        "more than the allowed +1.0"
    )
    # A primary that already errs raises the bar by as much.
    same = check(run(window(errors=200), window(errors=195), template=template), "error_rate")
    assert same.status == "pass"


def test_error_rate_needs_requests_on_both_arms() -> None:
    result = check(run(window(40), window(500), template=only("error_rate")), "error_rate")
    assert result.status == "inconclusive"
    assert result.samples == 40
    assert result.min_samples == 100
    assert "40 on the canary and 500 on the primary, 100 needed on each" in result.reason
    empty = Window(Profile.empty({}))
    result = check(run(empty, window(), template=only("error_rate")), "error_rate")
    assert result.status == "inconclusive"
    assert result.canary is None


def test_error_rate_slack() -> None:
    template = only("error_rate", threshold=0.01, slack=0.02)
    result = check(run(window(errors=25), window(), template=template), "error_rate")
    assert result.status == "pass"
    assert "within the allowed +3.0" in result.reason


# -- latency -------------------------------------------------------------------------------
def test_latency_p99() -> None:
    template = only("latency_p99")
    ok = check(run(window(latency_ms=11.0), window(), template=template), "latency_p99")
    assert ok.status == "pass"
    assert ok.value == pytest.approx(1.1, rel=0.05)

    slow = check(run(window(latency_ms=30.0, seed=1), window(), template=template), "latency_p99")
    assert slow.status == "fail"
    assert slow.canary is not None and slow.primary is not None
    assert slow.canary == pytest.approx(33, rel=0.03)
    assert slow.value == pytest.approx(3.0, rel=0.05)
    assert slow.reason.startswith("p99 latency 3")
    assert "more than the allowed" in slow.reason


def test_latency_slack_forgives_small_absolute_increases() -> None:
    # 4x slower, but by 3 ms: within 1.5 x 1 ms + 5 ms.
    template = only("latency_p99")
    result = check(
        run(window(latency_ms=4.0), window(latency_ms=1.0), template=template), "latency_p99"
    )
    assert result.status == "pass"
    assert result.value == pytest.approx(4.0, rel=0.05)
    strict = only("latency_p99", slack=0)
    result = check(
        run(window(latency_ms=4.0), window(latency_ms=1.0), template=strict), "latency_p99"
    )
    assert result.status == "fail"


def test_latency_over_a_zero_primary() -> None:
    template = only("latency_p99", slack=0)
    zeros = np.zeros(500)
    slower = check(
        run(window(500, latency_ms=2.0), window(500, latency_ms=zeros), template=template),
        "latency_p99",
    )
    assert slower.status == "fail"
    assert slower.value == math.inf
    assert slower.to_dict()["value"] is None
    equal = check(
        run(window(500, latency_ms=zeros), window(500, latency_ms=zeros), template=template),
        "latency_p99",
    )
    assert equal.status == "pass"
    assert equal.value == 1.0


def test_latency_needs_timed_requests() -> None:
    result = check(run(window(50), window(), template=only("latency_p99")), "latency_p99")
    assert result.status == "inconclusive"
    assert "50 on the canary and 1,000 on the primary, 200 needed on each" in result.reason


# -- contract violations -------------------------------------------------------------------
def test_contract_violation_rate() -> None:
    template = only("contract_violation_rate")
    name = "contract_violation_rate"
    ok = check(run(window(violations=5), window(violations=3), template=template), name)
    assert ok.status == "pass"
    assert ok.samples == 1003  # offered rows: answered plus refused
    bad = check(run(window(violations=100), window(), template=template), name)
    assert bad.status == "fail"
    assert bad.canary == pytest.approx(100 / 1100)
    assert bad.reason.startswith("contract violation rate 9.1% on the canary vs 0.0%")
    few = check(run(window(60, violations=30), window(), template=template), name)
    assert few.status == "inconclusive"
    assert few.samples == 90
    assert "90 on the canary" in few.reason


# -- output shift --------------------------------------------------------------------------
def test_output_shift_categorical() -> None:
    template = only("output_shift")
    ok = check(run(window(positive=0.31), window(positive=0.3), template=template), "output_shift")
    assert ok.status == "pass"
    assert ok.value is not None and ok.value < 0.1
    assert ok.canary is None and ok.primary is None
    flipped = check(
        run(window(positive=0.7), window(positive=0.3), template=template), "output_shift"
    )
    assert flipped.status == "fail"
    assert flipped.value == pytest.approx(0.34, abs=0.01)
    assert "Jensen-Shannon distance 0.34" in flipped.reason
    few = check(run(window(150, positive=0.7), window(), template=template), "output_shift")
    assert few.status == "inconclusive"
    assert few.samples == 150
    assert "150 on the canary and 1,000 on the primary, 500 needed on each" in few.reason


def test_output_shift_numeric() -> None:
    rng = np.random.default_rng(7)
    template = only("output_shift")

    def numeric(shift: float) -> Window:
        return window(2000, kind="numeric", predictions=rng.normal(shift, 1.0, 2000))

    ok = check(run(numeric(0.0), numeric(0.0), template=template), "output_shift")
    assert ok.status == "pass"
    moved = check(run(numeric(0.5), numeric(0.0), template=template), "output_shift")
    assert moved.status == "fail"
    assert moved.value == pytest.approx(0.5, abs=0.1)
    assert "standard deviations" in moved.reason


def test_output_shift_skipped_without_predictions() -> None:
    template = only("output_shift")
    result = check(run(window(kind=None), window(), template=template), "output_shift")
    assert result.status == "skipped"
    assert result.reason == "no predictions recorded on the canary"
    assert run(window(kind=None), window(), template=template).verdict == "pass"


def test_output_shift_of_different_kinds_is_inconclusive() -> None:
    numeric = window(kind="numeric", predictions=np.arange(1000, dtype=float))
    result = check(run(numeric, window(), template=only("output_shift")), "output_shift")
    assert result.status == "inconclusive"
    assert "not comparable" in result.reason


# -- agreement -----------------------------------------------------------------------------
def test_agreement() -> None:
    template = only("agreement")
    canary = window()
    canary.agreement = {PRIMARY: [1000, 950]}
    ok = check(run(canary, window(), template=template), "agreement")
    assert (ok.status, ok.canary, ok.value, ok.samples) == ("pass", 0.95, 0.95, 1000)
    assert ok.primary is None

    flipped = window(predictions=np.array(["1", "0"] * 500))
    flipped.agreement = {PRIMARY: [1000, 0], 99: [1000, 1000]}  # another version agrees
    bad = check(run(flipped, window(), template=template), "agreement")
    assert bad.status == "fail"
    assert bad.value == 0.0
    assert bad.reason == (
        "the canary gave the primary's class on 0.0% of 1,000 compared rows: "
        "less than the required 90.0%"
    )

    few = window()
    few.agreement = {PRIMARY: [150, 150]}
    result = check(run(few, window(), template=template), "agreement")
    assert result.status == "inconclusive"
    assert result.reason == "too few compared rows to judge: 150 of 200 needed"
    none = check(run(window(), window(), template=template), "agreement")
    assert none.status == "inconclusive"
    assert none.samples == 0


def test_agreement_skipped_for_regressors() -> None:
    result = check(
        run(window(), window(), classifier=False, template=only("agreement")), "agreement"
    )
    assert result.status == "skipped"
    assert result.reason == "not a classifier"


# -- label quality -------------------------------------------------------------------------
def test_label_quality_skipped_without_labels() -> None:
    analysis = run(window(), window(), template=only("label_quality"))
    result = check(analysis, "label_quality")
    assert (result.status, result.reason) == ("skipped", "no labels yet")
    assert analysis.verdict == "pass"


def test_label_quality_needs_labels_on_both_arms() -> None:
    result = check(
        run(
            window(),
            window(),
            template=only("label_quality"),
            canary_labels=labels(40, 40),
            primary_labels=labels(300, 280),
        ),
        "label_quality",
    )
    assert result.status == "inconclusive"
    assert result.samples == 40
    assert "40 on the canary and 300 on the primary, 100 needed on each" in result.reason
    only_primary = check(
        run(window(), window(), template=only("label_quality"), primary_labels=labels(300, 280)),
        "label_quality",
    )
    assert only_primary.status == "inconclusive"


def test_label_quality_classifier() -> None:
    template = only("label_quality")
    ok = check(
        run(
            window(),
            window(),
            template=template,
            canary_labels=labels(200, 178),
            primary_labels=labels(200, 180),
        ),
        "label_quality",
    )
    assert ok.status == "pass"
    assert ok.canary == pytest.approx(0.89)
    assert ok.primary == pytest.approx(0.90)
    assert ok.value == pytest.approx(0.01)
    bad = check(
        run(
            window(),
            window(),
            template=template,
            canary_labels=labels(200, 160),
            primary_labels=labels(200, 180),
        ),
        "label_quality",
    )
    assert bad.status == "fail"
    assert bad.value == pytest.approx(0.1)
    assert "accuracy 80.0% on the canary vs 90.0% on the primary" in bad.reason
    assert "down 10.0 points, more than the allowed 2.0" in bad.reason


def test_label_quality_regressor() -> None:
    template = only("label_quality")

    def quality(canary_right: int, primary_right: int) -> CheckResult:
        analysis = run(
            window(kind="numeric", predictions=np.arange(1000, dtype=float)),
            window(kind="numeric", predictions=np.arange(1000, dtype=float)),
            classifier=False,
            template=template,
            canary_labels=labels(100, canary_right, classes=False),
            primary_labels=labels(100, primary_right, classes=False),
        )
        return check(analysis, "label_quality")

    ok = quality(50, 50)  # MAE 0.5 on both
    assert (ok.status, ok.value) == ("pass", 0.0)
    assert ok.canary == pytest.approx(0.5)
    bad = quality(40, 50)  # MAE 0.6 vs 0.5: +20%
    assert bad.status == "fail"
    assert bad.value == pytest.approx(0.2)
    assert "MAE 0.6 on the canary vs 0.5 on the primary" in bad.reason
    assert "+20.0%, more than the allowed +2.0%" in bad.reason
    better = quality(60, 50)
    assert better.status == "pass"
    assert better.value == pytest.approx(-0.2)
    perfect_primary = quality(99, 100)
    assert perfect_primary.status == "fail"
    assert perfect_primary.value == math.inf
    assert perfect_primary.to_dict()["value"] is None
    both_perfect = quality(100, 100)
    assert (both_perfect.status, both_perfect.value) == ("pass", 0.0)


def test_label_quality_unscorable_labels_are_inconclusive() -> None:
    # Class names as a regressor's labels (a misconfigured feedback source).
    analysis = run(
        window(),
        window(),
        classifier=False,
        template=only("label_quality"),
        canary_labels=labels(100, 100),
        primary_labels=labels(100, 100),
    )
    result = check(analysis, "label_quality")
    assert result.status == "pass"  # "1" and "0" read as numbers
    bad = [Labeled("cat", "dog", None, None, T0, T0)] * 100
    analysis = run(
        window(),
        window(),
        classifier=False,
        template=only("label_quality"),
        canary_labels=bad,
        primary_labels=bad,
    )
    result = check(analysis, "label_quality")
    assert result.status == "inconclusive"
    assert result.reason.startswith("labels could not be scored")


# -- serialization -------------------------------------------------------------------------
def test_to_dict_is_json_safe() -> None:
    canary = window(500, latency_ms=2.0, errors=100)
    primary = window(500, latency_ms=np.zeros(500))
    data = serializable(run(canary, primary, template=DEFAULT))
    latency = next(c for c in data["checks"] if c["name"] == "latency_p99")
    assert latency["value"] is None
    assert set(latency) == {
        "name",
        "status",
        "critical",
        "canary",
        "primary",
        "value",
        "threshold",
        "samples",
        "min_samples",
        "reason",
    }
    assert data["verdict"] == "fail"

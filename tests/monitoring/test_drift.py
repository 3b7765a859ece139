"""Drift by effect size: known answers, false-alarm rates over many seeds, ranking.

KLL compaction draws random bits that no seed controls, so sketched statistics vary a
little from run to run; rates are asserted with margins that such noise cannot cross.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from slipway.errors import ValidationFailed
from slipway.monitoring.drift import (
    ColumnDrift,
    DriftReport,
    DriftThresholds,
    column_drift,
    profile_drift,
    rank,
)
from slipway.monitoring.profile import build_profile
from slipway.monitoring.sketches import ColumnSketch

SEEDS = range(100)
MIX = ["web", "ios", "android", "api", "partner"]
P_MIX = [0.35, 0.25, 0.2, 0.12, 0.08]
Q_MIX = [0.22, 0.22, 0.2, 0.18, 0.18]  # JS distance ~0.17 from P_MIX


def numeric(x: np.ndarray) -> ColumnSketch:
    s = ColumnSketch.numeric()
    s.update(x)
    return s


def categorical(x: np.ndarray) -> ColumnSketch:
    s = ColumnSketch.categorical()
    s.update(x)
    return s


def test_same_normal_distribution_is_not_drift() -> None:
    """Two samples of 2,000 from N(0, 1): exact W1/std has mean ~0.04; the sketches add
    ~0.005. Alarms must stay rare (about 0.5% are expected at this n)."""
    scores = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        result = column_drift("x", numeric(rng.normal(size=2000)), numeric(rng.normal(size=2000)))
        assert result.statistic == "wasserstein_norm" and result.n_current == 2000
        scores.append(result.score)
    assert np.mean(scores) < 0.06
    assert np.mean(np.array(scores) >= 0.1) <= 0.05


def test_a_fifth_sigma_shift_is_drift() -> None:
    flagged = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        ref, cur = rng.normal(size=2000), rng.normal(0.2, 1, 2000)
        flagged.append(column_drift("x", numeric(ref), numeric(cur)).verdict == "drift")
    assert np.mean(flagged) >= 0.95
    # The known answer at large n. One sketch pair's score has a spread of ~0.012 from
    # KLL's unseeded compaction (400 runs: 0.165-0.238), so one score is held to 5 of
    # those (±0.06) and the mean of 8 pairs, spread ~0.0045, to ±0.02: no bias.
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=200_000), rng.normal(0.2, 1, 200_000)
    runs = [column_drift("x", numeric(ref), numeric(cur)) for _ in range(8)]
    assert all(r.verdict == "drift" and r.score == pytest.approx(0.2, abs=0.06) for r in runs)
    assert np.mean([r.score for r in runs]) == pytest.approx(0.2, abs=0.02)
    assert all(r.psi is not None and r.psi < 0.1 for r in runs)  # why PSI is not the judge


def test_category_mix() -> None:
    same, changed, p_values = [], [], []
    for seed in range(50):
        rng = np.random.default_rng(seed)
        ref = categorical(rng.choice(MIX, 2000, p=P_MIX))
        same_result = column_drift("c", ref, categorical(rng.choice(MIX, 2000, p=P_MIX)))
        same.append(same_result.verdict)
        p_values.append(same_result.chi2_p)
        changed.append(column_drift("c", ref, categorical(rng.choice(MIX, 2000, p=Q_MIX))).verdict)
    assert same.count("drift") == 0
    assert changed.count("drift") == 50
    # the two-sample chi-square is a valid test: ~5% of same-distribution pairs at 0.05
    assert 0 < np.mean(np.array(p_values) < 0.05) <= 0.15


def test_chi_square_matches_scipy() -> None:
    from scipy.stats import chi2_contingency

    ref = ColumnSketch.categorical()
    ref.update_counts(["a", "b", "c"], [500, 300, 200])
    cur = ColumnSketch.categorical()
    cur.update_counts(["a", "b", "d"], [400, 350, 50])
    result = column_drift("c", ref, cur, DriftThresholds(min_samples=1))
    expected = chi2_contingency([[500, 300, 200, 0], [400, 350, 0, 50]], correction=False)
    assert result.chi2 == pytest.approx(expected.statistic)
    assert result.chi2_p == pytest.approx(expected.pvalue)
    assert result.kind == "categorical" and result.wasserstein_norm is None


def test_long_tail_goes_to_other_without_false_alarms() -> None:
    """50,000 distinct ids, far past the sketch's capacity, on both sides."""
    rng = np.random.default_rng(7)
    ref = categorical(rng.zipf(1.2, 100_000) % 50_000)
    cur = categorical(rng.zipf(1.2, 100_000) % 50_000)
    assert column_drift("id", ref, cur).verdict == "ok"
    moved = categorical((rng.zipf(1.2, 100_000) + 7) % 50_000)
    assert column_drift("id", ref, moved).verdict == "drift"


def test_insufficient_samples_on_either_side() -> None:
    rng = np.random.default_rng(8)
    big, small = numeric(rng.normal(size=5000)), numeric(rng.normal(5, 1, 99))
    for ref, cur in ((big, small), (small, big)):
        result = column_drift("x", ref, cur)
        assert (result.verdict, result.severity) == ("insufficient", "none")
        assert result.score is not None and result.score > 1  # computed, just not judged
    # A small training set is still a reference: 150 rows are enough on that side.
    iris_sized = numeric(rng.normal(size=150))
    assert column_drift("x", iris_sized, numeric(rng.normal(5, 1, 600))).verdict == "drift"
    empty = column_drift("x", big, ColumnSketch.numeric())
    assert (empty.verdict, empty.score, empty.psi) == ("insufficient", None, None)
    nan_only = numeric(np.full(1000, np.nan))
    assert column_drift("x", big, nan_only).null_rate_current == 1.0
    assert column_drift("x", big, small, DriftThresholds(min_samples=50)).verdict == "drift"


def test_severity_and_null_rates() -> None:
    rng = np.random.default_rng(9)
    ref = rng.normal(size=20_000)
    cur = rng.normal(0.5, 1, 20_000)
    cur[:2000] = np.nan
    result = column_drift("x", numeric(ref), numeric(cur))
    assert (result.verdict, result.severity) == ("drift", "critical")
    assert result.null_rate_current == pytest.approx(0.1) and result.null_rate_reference == 0
    mild = column_drift("x", numeric(ref), numeric(rng.normal(0.15, 1, 20_000)))
    assert (mild.verdict, mild.severity) == ("drift", "warning")


def test_constant_reference() -> None:
    ones = numeric(np.ones(1000))
    same = column_drift("x", ones, numeric(np.ones(1000)))
    assert (same.score, same.verdict) == (0.0, "ok")
    other = column_drift("x", ones, numeric(np.full(1000, 2.0)))
    assert other.score == math.inf and other.severity == "critical"
    assert other.to_dict()["score"] is None
    json.dumps(other.to_dict(), allow_nan=False)
    # Scaled by the current std: a share f elsewhere scores sqrt(f / (1 - f)), ~0.14 for
    # 2%, less the top 0.5% the quantile grid leaves out.
    few = column_drift("x", ones, numeric(np.r_[np.ones(980), np.full(20, 5.0)]))
    assert few.score is not None and 0.1 < few.score < math.sqrt(0.02 / 0.98)


def _result(column: str, verdict: str, score: float | None, threshold: float) -> ColumnDrift:
    return ColumnDrift(
        column=column,
        role="feature",
        kind="numeric",
        n_reference=1000,
        n_current=1000,
        psi=None,
        js_distance=None,
        wasserstein_norm=score,
        chi2=None,
        chi2_p=None,
        null_rate_reference=0.0,
        null_rate_current=0.0,
        statistic="wasserstein_norm",
        score=score,
        threshold=threshold,
        verdict=verdict,
        severity="none",
    )


def test_ranking_puts_drift_first_by_score_over_threshold() -> None:
    results = [
        _result("ok_low", "ok", 0.01, 0.1),
        _result("few", "insufficient", None, 0.1),
        _result("drift_mild", "drift", 0.15, 0.1),
        _result("drift_strong", "drift", 0.3, 0.2),  # ratio 1.5, same as drift_mild
        _result("drift_top", "drift", 0.5, 0.1),
        _result("ok_high", "ok", 0.09, 0.1),
        _result("few_scored", "insufficient", 0.9, 0.1),
    ]
    report = DriftReport(rank(results))
    assert [c.column for c in report.columns] == [
        "drift_top",
        "drift_mild",
        "drift_strong",
        "ok_high",
        "ok_low",
        "few_scored",
        "few",
    ]
    assert report.drifted == ["drift_top", "drift_mild", "drift_strong"]
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["drifted"] == report.drifted and len(data["columns"]) == 7


def test_profile_drift_covers_shared_features_prediction_and_score() -> None:
    rng = np.random.default_rng(10)
    n = 5000

    def profile(shift: float, extra: str) -> object:
        p1 = rng.beta(2, 5 - 3 * shift, n)
        return build_profile(
            {
                "a": rng.normal(shift, 1, n),
                "b": rng.choice(MIX, n, p=P_MIX),
                extra: rng.normal(size=n),
            },
            probabilities=np.column_stack([1 - p1, p1]),
            classes=["no", "yes"],
        )

    report = profile_drift(profile(0.0, "only_ref"), profile(0.5, "only_cur"))  # type: ignore[arg-type]
    by_name = {c.column: c for c in report.columns}
    assert set(by_name) == {"a", "b", "prediction", "score"}
    assert by_name["score"].role == "score" and by_name["prediction"].role == "prediction"
    assert by_name["prediction"].kind == "categorical" and by_name["score"].kind == "numeric"
    assert {"a", "score"} <= set(report.drifted) and "b" not in report.drifted
    assert report.columns[0].verdict == "drift"


def test_kind_mismatch_and_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValidationFailed) as info:
        column_drift("x", ColumnSketch.numeric(), ColumnSketch.categorical())
    assert info.value.details[0]["field"] == "x"
    for bad in ({"numeric_wasserstein": 0}, {"categorical_js": -1}, {"min_samples": -1}):
        with pytest.raises(ValidationFailed):
            DriftThresholds(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed):
        DriftThresholds(critical_factor=0.5)

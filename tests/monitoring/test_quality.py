"""Label quality metrics: hand-computed small cases, scikit-learn as an oracle, and the
calibration property (calibrated -> ECE near 0, over-confident -> ECE well above)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn import metrics as skm

from slipway.errors import ValidationFailed
from slipway.monitoring.quality import classification_quality, label_delay, regression_quality

BINARY_P1 = np.array([0.2, 0.6, 0.7, 0.9])  # P(class 1) of four rows


def binary_probs() -> np.ndarray:
    return np.column_stack([1 - BINARY_P1, BINARY_P1])


def test_binary_known_answers() -> None:
    q = classification_quality([0, 0, 1, 1], [0, 1, 1, 1], binary_probs(), [0, 1])
    assert q["n"] == 4 and q["positive_class"] == 1
    assert q["accuracy"] == pytest.approx(0.75)
    # Positive class 1: TP 2, FP 1, FN 0.  Class 0: TP 1, FP 0, FN 1.
    assert q["precision_positive"] == pytest.approx(2 / 3)
    assert q["recall_positive"] == pytest.approx(1.0)
    assert q["f1_positive"] == pytest.approx(0.8)
    assert q["precision"] == pytest.approx((1 + 2 / 3) / 2)  # macro
    assert q["recall"] == pytest.approx((0.5 + 1) / 2)
    assert q["f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert q["roc_auc"] == pytest.approx(1.0)  # every positive outscores every negative
    assert q["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.4, 0.7, 0.9])))
    assert q["brier"] == pytest.approx((0.2**2 + 0.6**2 + 0.3**2 + 0.1**2) / 4)
    # Top-label confidences 0.8 (right), 0.6 (wrong), 0.7 (right), 0.9 (right): one per bin.
    assert q["ece"] == pytest.approx((0.2 + 0.6 + 0.3 + 0.1) / 4)
    bins = {(round(b["lower"], 1), round(b["upper"], 1)): b for b in q["reliability"]}
    assert len(bins) == 10
    assert bins[(0.5, 0.6)] == {
        "lower": 0.5,
        "upper": 0.6,
        "count": 1,
        "confidence": pytest.approx(0.6),
        "accuracy": 0.0,
    }
    assert bins[(0.6, 0.7)]["count"] == 1  # 0.7 lands in its own bin despite float error
    assert bins[(0.0, 0.1)] == {
        "lower": 0.0,
        "upper": 0.1,
        "count": 0,
        "confidence": None,
        "accuracy": None,
    }


def test_two_bins_average_out_the_miscalibration() -> None:
    q = classification_quality([0, 0, 1, 1], [0, 1, 1, 1], binary_probs(), [0, 1], bins=2)
    # All four confidences fall in (0.5, 1]: mean 0.75, accuracy 0.75.
    assert [b["count"] for b in q["reliability"]] == [0, 4]
    assert q["ece"] == pytest.approx(0.0)


def test_one_dimensional_binary_probabilities_are_p_of_the_positive_class() -> None:
    full = classification_quality([0, 0, 1, 1], [0, 1, 1, 1], binary_probs(), [0, 1])
    short = classification_quality([0, 0, 1, 1], [0, 1, 1, 1], BINARY_P1, [0, 1])
    assert short == full


def test_multiclass_known_answers() -> None:
    classes = ["a", "b", "c"]
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]])
    labels = ["a", "b", "c", "a"]
    q = classification_quality(labels, ["a", "b", "c", "b"], probs, classes)
    assert q["accuracy"] == pytest.approx(0.75)
    # a: P 1, R 1/2; b: P 1/2, R 1; c: P 1, R 1.
    assert q["precision"] == pytest.approx(2.5 / 3)
    assert q["recall"] == pytest.approx(2.5 / 3)
    assert q["f1"] == pytest.approx(7 / 9)
    assert q["precision_positive"] is None and q["positive_class"] is None
    assert q["brier"] == pytest.approx((0.14 + 0.06 + 0.38 + 0.74) / 4)
    assert q["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.5, 0.3])))
    assert q["roc_auc"] == pytest.approx(
        skm.roc_auc_score(labels, probs, multi_class="ovr", labels=classes)
    )


def test_agrees_with_scikit_learn_on_random_data() -> None:
    rng = np.random.default_rng(7)
    n, k = 500, 4
    probs = rng.dirichlet(np.ones(k), size=n)
    labels = rng.integers(0, k, size=n).tolist()
    predictions = probs.argmax(axis=1).tolist()
    q = classification_quality(labels, predictions, probs, list(range(k)))
    assert q["accuracy"] == pytest.approx(skm.accuracy_score(labels, predictions))
    assert q["f1"] == pytest.approx(skm.f1_score(labels, predictions, average="macro"))
    assert q["log_loss"] == pytest.approx(skm.log_loss(labels, probs, labels=list(range(k))))
    assert q["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr"))
    binary = (np.array(labels) % 2).tolist()
    p1 = probs[:, 0]
    qb = classification_quality(binary, (p1 > 0.5).astype(int).tolist(), p1, [0, 1])
    assert qb["brier"] == pytest.approx(skm.brier_score_loss(binary, p1))
    assert qb["roc_auc"] == pytest.approx(skm.roc_auc_score(binary, p1))


def test_labels_outside_the_classes_count_as_wrong() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    q = classification_quality(["a", "z", ["x"]], ["a", "a", "b"], probs, ["a", "b"])
    assert q["accuracy"] == pytest.approx(1 / 3)
    # The unknown label's class got probability 0: log loss is clipped, not infinite.
    assert math.isfinite(q["log_loss"]) and q["log_loss"] > 20
    assert q["brier"] == pytest.approx((0.1**2 + 0.2**2 + 0.7**2) / 3)
    assert q["roc_auc"] is None  # among known labels only class "a" is present
    # An unknown prediction never matches an unknown label.
    assert classification_quality(["z"], ["z"], classes=["a", "b"])["accuracy"] == 0.0


def test_undefined_metrics_are_none() -> None:
    one_class = classification_quality([1, 1, 1], [1, 0, 1], np.array([0.9, 0.4, 0.8]), [0, 1])
    assert one_class["roc_auc"] is None and one_class["log_loss"] is not None
    no_probs = classification_quality(["x", "y"], ["x", "x"])
    assert no_probs["classes"] == ["x", "y"] and no_probs["accuracy"] == 0.5
    for key in ("roc_auc", "log_loss", "brier", "ece"):
        assert no_probs[key] is None
    assert no_probs["reliability"] == []
    empty = classification_quality([], [], np.zeros((0, 2)), [0, 1])
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["ece"] is None
    guessed = classification_quality(["n", "y"], ["n", "n"], np.array([[0.8, 0.2], [0.6, 0.4]]))
    assert guessed["classes"] == ["n", "y"] and guessed["roc_auc"] == 1.0
    mixed = classification_quality(["1", 2, 2.0], [1, 2, "2"])  # JSON gives such things
    assert mixed["accuracy"] == pytest.approx(1 / 3)


def test_bad_shapes_are_refused_by_field() -> None:
    with pytest.raises(ValidationFailed) as err:
        classification_quality([0, 1], [0, 1], np.zeros((2, 3)), [0, 1])
    assert err.value.details[0]["field"] == "probabilities"
    with pytest.raises(ValidationFailed):
        classification_quality([0, 1], [0])
    with pytest.raises(ValidationFailed):
        regression_quality([1.0], ["a"])  # type: ignore[list-item]


def test_calibrated_classifier_has_small_ece_and_overconfidence_raises_it() -> None:
    rng = np.random.default_rng(11)
    p = rng.uniform(0.02, 0.98, size=20_000)
    labels = (rng.uniform(size=p.size) < p).astype(int).tolist()
    predictions = (p > 0.5).astype(int).tolist()
    calibrated = classification_quality(labels, predictions, p, [0, 1])
    assert calibrated["ece"] < 0.02
    logit = np.log(p / (1 - p))
    overconfident = 1 / (1 + np.exp(-3 * logit))
    worse = classification_quality(labels, predictions, overconfident, [0, 1])
    assert worse["ece"] > 0.1
    # The diagram shows why: in the top bin confidence exceeds accuracy.
    top = worse["reliability"][-1]
    assert top["confidence"] - top["accuracy"] > 0.05


def test_regression_known_answers() -> None:
    q = regression_quality([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0])
    assert q == {"n": 4, "mae": 0.25, "rmse": 0.5, "r2": pytest.approx(1 - 1 / 5)}
    assert regression_quality([3.0], [1.0]) == {"n": 1, "mae": 2.0, "rmse": 2.0, "r2": None}
    assert regression_quality([2.0, 2.0], [2.0, 2.0])["r2"] == 1.0
    assert regression_quality([], []) == {"n": 0, "mae": None, "rmse": None, "r2": None}
    rng = np.random.default_rng(3)
    y, p = rng.normal(size=50), rng.normal(size=50)
    assert regression_quality(y.tolist(), p.tolist())["r2"] == pytest.approx(skm.r2_score(y, p))


def test_label_delay_percentiles() -> None:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    predicted = [t0] * 5
    received = [t0 + timedelta(seconds=s) for s in (50, 10, 40, 20, 30)]
    # p95 by linear interpolation: rank 0.95 * 4 = 3.8, between 40 and 50.
    assert label_delay(predicted, received) == {"p50_s": 30.0, "p95_s": 48.0, "max_s": 50.0}
    assert label_delay([], []) == {"p50_s": None, "p95_s": None, "max_s": None}

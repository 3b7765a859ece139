"""Label quality from feedback: classification and regression metrics, calibration, delay.

Pure functions over plain sequences; feedback.py gathers the labels and monitors.py
judges the numbers. A metric that cannot be computed is ``None``, never NaN::

    classification_quality(["a", "b", "b"], ["a", "b", "a"])["accuracy"]   # 0.666...
    regression_quality([1.0, 2.0], [1.5, 2.0])["mae"]                       # 0.25
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from slipway.errors import ValidationFailed

# Probabilities are clipped here for log loss, as scikit-learn does, so one confident
# mistake costs about 34.5 nats instead of infinity.
_EPS = 1e-15
# Codes for labels and predictions outside ``classes``: distinct, so they never match.
_UNKNOWN_LABEL = -1
_UNKNOWN_PREDICTION = -2


def classification_quality(
    labels: Sequence[Any],
    predictions: Sequence[Any],
    probabilities: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
    *,
    bins: int = 10,
) -> dict[str, Any]:
    """Accuracy, precision/recall/F1, ROC AUC, log loss, Brier score and calibration.

    ``probabilities`` is (n, k) with columns in ``classes`` order (a 1-D array is read
    as P(classes[1]) of a binary model). ``classes`` defaults to the sorted labels and
    predictions seen (0..k-1 when their number does not match the k columns).
    ``precision``, ``recall`` and ``f1`` are macro averages; binary models also get
    ``*_positive``, of the positive class ``classes[1]``. A label outside ``classes``
    counts as wrong (its class got probability 0).
    """
    if len(labels) != len(predictions):
        raise ValidationFailed.field("predictions", "must have one prediction per label")
    if bins < 1:
        raise ValidationFailed.field("bins", "must be at least 1")
    n = len(labels)
    probs = None if probabilities is None else np.asarray(probabilities, dtype=float)
    if classes is None:
        # As scikit-learn orders classes_: the sorted values, when they fit the columns.
        classes = _sorted_values([*labels, *predictions])
        if probs is not None and probs.ndim == 2 and len(classes) != probs.shape[1]:
            classes = list(range(probs.shape[1]))
    classes = list(classes)
    k = len(classes)
    if probs is not None:
        probs = _as_matrix(probs, n, k)

    y = _encode(labels, classes, _UNKNOWN_LABEL)
    p = _encode(predictions, classes, _UNKNOWN_PREDICTION)
    out: dict[str, Any] = {
        "n": n,
        "classes": classes,
        "accuracy": None,
        "precision": None,
        "recall": None,
        "f1": None,
        "positive_class": classes[1] if k == 2 else None,
        "precision_positive": None,
        "recall_positive": None,
        "f1_positive": None,
        "roc_auc": None,
        "log_loss": None,
        "brier": None,
        "ece": None,
        "reliability": [],
    }
    if n == 0:
        return out
    out["accuracy"] = float(np.mean(y == p))
    if k:
        from sklearn import metrics as skm  # imported when needed: 1.4 s at server start

        prec, rec, f1, _ = skm.precision_recall_fscore_support(
            y, p, labels=list(range(k)), average=None, zero_division=0
        )
        out["precision"] = float(np.mean(prec))
        out["recall"] = float(np.mean(rec))
        out["f1"] = float(np.mean(f1))
        if k == 2:
            out["precision_positive"] = float(prec[1])
            out["recall_positive"] = float(rec[1])
            out["f1_positive"] = float(f1[1])
    if probs is not None and k:
        out.update(_probability_metrics(y, probs, classes, bins))
    return out


def _probability_metrics(
    y: np.ndarray, probs: np.ndarray, classes: list[Any], bins: int
) -> dict[str, Any]:
    n, k = probs.shape
    known = y >= 0
    onehot = np.zeros((n, k))
    onehot[np.flatnonzero(known), y[known]] = 1.0
    p_true = (probs * onehot).sum(axis=1)  # 0 for labels outside classes
    if k == 2:
        brier = float(np.mean((probs[:, 1] - onehot[:, 1]) ** 2))
    else:
        brier = float(np.mean(((probs - onehot) ** 2).sum(axis=1)))

    top = np.argmax(probs, axis=1)
    confidence = probs[np.arange(n), top]
    correct = (top == y).astype(float)
    # Equal-width bins, upper edge inclusive; confidence 0 falls in the first bin. The
    # rounding keeps 0.7 * 10 (= 7.000000000000001) in the bin whose upper edge is 0.7.
    index = np.clip(np.ceil(np.round(confidence * bins, 9)).astype(int) - 1, 0, bins - 1)
    reliability: list[dict[str, Any]] = []
    ece = 0.0
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        conf = float(confidence[members].mean()) if count else None
        acc = float(correct[members].mean()) if count else None
        if conf is not None and acc is not None:
            ece += count / n * abs(acc - conf)
        reliability.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": count,
                "confidence": conf,
                "accuracy": acc,
            }
        )
    return {
        "roc_auc": _roc_auc(y[known], probs[known], k),
        "log_loss": float(-np.mean(np.log(np.clip(p_true, _EPS, 1.0)))),
        "brier": brier,
        "ece": float(ece),
        "reliability": reliability,
    }


def _roc_auc(y: np.ndarray, probs: np.ndarray, k: int) -> float | None:
    """Binary AUC of P(classes[1]); one-vs-rest macro AUC when every class is present.

    Rows whose label is outside ``classes`` are left out: they are neither positive nor
    negative. Computed one column at a time so rows need not sum to exactly 1.
    """
    from sklearn import metrics as skm

    present = set(np.unique(y).tolist())
    if k == 2:
        if present != {0, 1}:
            return None
        return float(skm.roc_auc_score(y == 1, probs[:, 1]))
    if k < 2 or present != set(range(k)):
        return None
    return float(np.mean([skm.roc_auc_score(y == c, probs[:, c]) for c in range(k)]))


def regression_quality(labels: Sequence[float], predictions: Sequence[float]) -> dict[str, Any]:
    """Mean absolute error, root mean squared error and R² (None below two labels).

    R² of constant labels is 1.0 for a perfect fit and 0.0 otherwise, as in scikit-learn.
    """
    if len(labels) != len(predictions):
        raise ValidationFailed.field("predictions", "must have one prediction per label")
    y = _floats(labels, "labels")
    p = _floats(predictions, "predictions")
    n = len(y)
    out: dict[str, Any] = {"n": n, "mae": None, "rmse": None, "r2": None}
    if n == 0:
        return out
    err = p - y
    out["mae"] = float(np.mean(np.abs(err)))
    out["rmse"] = float(math.sqrt(np.mean(err**2)))
    if n >= 2:
        ss_res = float(np.sum(err**2))
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        out["r2"] = (1.0 if ss_res == 0 else 0.0) if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return out


def label_delay(
    predicted_at: Sequence[datetime], received_at: Sequence[datetime]
) -> dict[str, float | None]:
    """How long labels took to arrive after their predictions, in seconds."""
    if len(predicted_at) != len(received_at):
        raise ValidationFailed.field("received_at", "must have one time per prediction")
    if not predicted_at:
        return {"p50_s": None, "p95_s": None, "max_s": None}
    delays = np.array(
        [(r - p).total_seconds() for p, r in zip(predicted_at, received_at, strict=True)]
    )
    return {
        "p50_s": float(np.percentile(delays, 50)),
        "p95_s": float(np.percentile(delays, 95)),
        "max_s": float(delays.max()),
    }


def _as_matrix(probs: np.ndarray, n: int, k: int) -> np.ndarray:
    if probs.ndim == 1 and k == 2:
        probs = np.column_stack([1.0 - probs, probs])
    if probs.ndim != 2 or probs.shape != (n, k):
        raise ValidationFailed.field(
            "probabilities", f"must have shape ({n}, {k}): one row per label, one column per class"
        )
    return probs


def _encode(values: Sequence[Any], classes: list[Any], unknown: int) -> np.ndarray:
    index: dict[Any, int] = {}
    for i, c in enumerate(classes):
        try:
            index.setdefault(c, i)
        except TypeError:  # an unhashable class can match nothing
            continue
    out = np.empty(len(values), dtype=int)
    for i, v in enumerate(values):
        try:
            out[i] = index.get(v, unknown)
        except TypeError:  # unhashable (a list from JSON): not a class
            out[i] = unknown
    return out


def _sorted_values(values: Sequence[Any]) -> list[Any]:
    unique: list[Any] = []
    seen: set[Any] = set()
    for v in values:
        try:
            if v in seen:
                continue
            seen.add(v)
        except TypeError:  # unhashable: compare by equality instead
            if v in unique:
                continue
        unique.append(v)
    try:
        return sorted(unique)
    except TypeError:  # mixed types (1 and "1"): any stable order will do
        return sorted(unique, key=repr)


def _floats(values: Sequence[float], name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValidationFailed.field(name, "must be numbers") from None

"""The benchmark's data and models, rebuilt identically in every venv.

Only numpy and scikit-learn are imported, so the MLflow and BentoML venvs (which pin the
same scikit-learn) train the very same models from the same seed instead of unpickling
one across environments. ``python models.py`` prints each model's probabilities for the
benchmark row, which the harness compares with every server's answer.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

N_FEATURES = 12
FEATURES = [f"x{i:02d}" for i in range(N_FEATURES)]
MODELS = ("logreg", "hgb")
SEED = 0
# The tree type skops does not trust by default; slipway registrations opt in to it.
HGB_TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=5000,
        n_features=N_FEATURES,
        n_informative=8,
        n_redundant=2,
        random_state=SEED,
    )
    return X, y


def train(kind: str) -> Any:
    """``logreg``: LogisticRegression; ``hgb``: a 100-tree HistGradientBoostingClassifier
    (early stopping off, so it always has 100 trees)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = data()
    if kind == "logreg":
        return LogisticRegression(max_iter=1000).fit(X, y)
    if kind == "hgb":
        return HistGradientBoostingClassifier(
            max_iter=100, early_stopping=False, random_state=SEED
        ).fit(X, y)
    raise ValueError(f"unknown model {kind!r}; expected one of {MODELS}")


def row() -> list[float]:
    """The one row every request carries: a training row, so it is inside the contract
    slipway infers from the training data."""
    X, _ = data()
    return [float(v) for v in X[0]]


def record() -> dict[str, float]:
    return dict(zip(FEATURES, row(), strict=True))


def expected_probabilities() -> dict[str, list[float]]:
    x = np.asarray([row()])
    return {kind: [float(p) for p in train(kind).predict_proba(x)[0]] for kind in MODELS}


if __name__ == "__main__":
    print(json.dumps(expected_probabilities()))

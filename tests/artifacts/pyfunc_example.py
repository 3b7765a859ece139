"""A tiny pyfunc model for the tests: trusted code, loaded by class name."""

from __future__ import annotations

from typing import Any

import numpy as np


class ThresholdModel:
    """Class 1 when the first feature exceeds ``threshold``."""

    def __init__(self, threshold: float = 5.0, with_proba: bool = True) -> None:
        self.threshold = threshold
        self.with_proba = with_proba

    def predict(self, X: np.ndarray) -> Any:
        p = 1.0 / (1.0 + np.exp(-(X[:, 0] - self.threshold)))
        labels = (p > 0.5).astype(int)
        if not self.with_proba:
            return labels
        return {
            "predictions": labels,
            "probabilities": np.column_stack([1 - p, p]),
            "classes": [0, 1],
        }

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


class SlowModel:
    """Takes ``delay_s`` per call whatever the rows: a model at a known capacity, for
    overload tests. One call per request (not batchable)."""

    batchable = False

    def __init__(self, delay_s: float = 0.1) -> None:
        self.delay_s = delay_s

    def predict(self, X: np.ndarray) -> Any:
        import time

        time.sleep(self.delay_s)
        return np.zeros(len(X), dtype=int)


class FaultyModel:
    """ThresholdModel's answers with faults to order, for rollout tests: raise on a share
    ``error_rate`` of calls, take ``delay_s`` longer per call, or ``flip`` every class.
    One call per request (not batchable), so the error rate is per request."""

    batchable = False

    def __init__(
        self,
        threshold: float = 5.0,
        error_rate: float = 0.0,
        delay_s: float = 0.0,
        flip: bool = False,
        seed: int = 0,
    ) -> None:
        self.model = ThresholdModel(threshold)
        self.error_rate = error_rate
        self.delay_s = delay_s
        self.flip = flip
        self.rng = np.random.default_rng(seed)

    def predict(self, X: np.ndarray) -> Any:
        import time

        if self.delay_s:
            time.sleep(self.delay_s)
        if self.error_rate and self.rng.random() < self.error_rate:
            raise RuntimeError("injected fault")
        out = self.model.predict(X)
        if self.flip:
            out["predictions"] = 1 - out["predictions"]
            out["probabilities"] = out["probabilities"][:, ::-1]
        return out


# The row count of every call of each RecordingModel, by tag: how a test sees which
# requests micro-batching merged into one call.
CALLS: dict[str, list[int]] = {}


class RecordingModel:
    """ThresholdModel's answers after ``delay_s`` per call, noting each call's row count
    in ``CALLS[tag]``. Batchable: concurrent requests may share a call."""

    def __init__(self, tag: str, delay_s: float = 0.0) -> None:
        self.model = ThresholdModel()
        self.tag = tag
        self.delay_s = delay_s

    def predict(self, X: np.ndarray) -> Any:
        import time

        CALLS.setdefault(self.tag, []).append(len(X))
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.model.predict(X)
